/*
 * The host journal: what Suture did to this machine's livepatches, one JSON line per change, in
 * <state>/journal.jsonl.
 *
 * The kernel forgets a patch the moment it is disabled or replaced (6.1 frees it from sysfs), so the
 * only record of "livepatch_a was replaced by livepatch_b at 12:03" is ours. `status` uses it to say
 * why a loaded livepatch module is inactive. Lines that do not parse are skipped, never fatal.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRoots } from './roots.js';

export interface JournalEntry {
  at: string;
  action: 'apply' | 'revert' | 'unload';
  patch: string;
  version?: string;
  forced?: boolean;
  replaced?: string[];
}

/** One parsed journal line as an entry, or undefined when it is not one (explicit checks: no zod on the host path). */
function asEntry(v: unknown): JournalEntry | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const optional = (x: unknown, type: string) => x === undefined || typeof x === type;
  if (typeof o.at !== 'string' || typeof o.patch !== 'string') return undefined;
  if (o.action !== 'apply' && o.action !== 'revert' && o.action !== 'unload') return undefined;
  if (!optional(o.version, 'string') || !optional(o.forced, 'boolean')) return undefined;
  const replaced = o.replaced;
  if (replaced !== undefined && !(Array.isArray(replaced) && replaced.every((r) => typeof r === 'string')))
    return undefined;
  return {
    at: o.at,
    action: o.action,
    patch: o.patch,
    ...(o.version !== undefined ? { version: o.version as string } : {}),
    ...(o.forced !== undefined ? { forced: o.forced as boolean } : {}),
    ...(replaced !== undefined ? { replaced: replaced as string[] } : {}),
  };
}

export function journalPath(roots: HostRoots): string {
  return join(roots.state, 'journal.jsonl');
}

export function record(roots: HostRoots, entry: Omit<JournalEntry, 'at'>): void {
  try {
    mkdirSync(roots.state, { recursive: true });
    appendFileSync(journalPath(roots), `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
  } catch {
    // a read-only /var must not fail a patch that the kernel already applied
  }
}

export function readJournal(roots: HostRoots): JournalEntry[] {
  let text = '';
  try {
    text = readFileSync(journalPath(roots), 'utf8');
  } catch {
    return [];
  }
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = asEntry(JSON.parse(line));
      if (e) out.push(e);
    } catch {
      // torn line from a crash: skip
    }
  }
  return out;
}

/** The patch that most recently replaced `patch`, according to the journal. */
export function replacedBy(journal: JournalEntry[], patch: string): string | undefined {
  for (let i = journal.length - 1; i >= 0; i--) {
    const e = journal[i] as JournalEntry;
    if (e.action === 'apply' && e.patch === patch) return undefined; // applied again after that
    if (e.action === 'apply' && e.replaced?.includes(patch)) return e.patch;
  }
  return undefined;
}

/*
 * The crash-loop guard: a patch after whose load the kernel oopsed, WARNed or panicked, or after
 * whose load the machine did not come back, is marked bad and never loaded again by Suture.
 *
 * Before insmod an "attempt" mark is written durably (durable.ts) under <state>/guard/, naming the
 * patch and this boot's id (/proc/sys/kernel/random/boot_id). When the load has settled (the
 * transition is over and `settleMs` more have passed) the kernel log since just before the load is
 * read: an oops, WARN or panic there writes a bad mark (durably, with the log excerpt) and only then
 * clears the attempt mark; a clean log clears it. An attempt mark left by another boot means the
 * machine went down while that patch was being loaded or settling: it becomes a bad mark with reason
 * `no-return`. A bad mark that cannot be read — or only its temporary file exists, written half way
 * when the power went — still marks the patch bad. `suture host clear-bad NAME` is the way back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';
import { removeDurably, writeDurably } from './durable.js';
import { KernelLogCursor, type KernelLogRecord } from './kmsg.js';
import type { HostRoots } from './roots.js';

/** Why a patch was marked bad; travels as the report's `reason` (manifest/protocol.ts, state `bad`). */
export type BadReason = 'oops' | 'warn' | 'panic' | 'no-return';

export interface BadMark {
  patch: string;
  reason: BadReason;
  /** the kernel log lines around the failure, control characters stripped */
  kernelLog: string;
  at: string;
  /** set when the mark was not read whole (written half way) or was derived from an attempt mark */
  note?: string;
}

/** how long after the transition the kernel log is still watched (a WARN in a just-patched path) */
export const DEFAULT_SETTLE_MS = 200;
const MAX_EXCERPT = 4000;

export function guardDir(roots: HostRoots): string {
  return join(roots.state, 'guard');
}
const attemptFile = (roots: HostRoots, patch: string) => join(guardDir(roots), `attempt-${patch}.json`);
const badFile = (roots: HostRoots, patch: string) => join(guardDir(roots), `bad-${patch}.json`);

export function bootId(roots: HostRoots): string {
  try {
    return readFileSync(join(roots.proc, 'sys/kernel/random/boot_id'), 'utf8').trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Kernel log text as the wire takes it: printable characters, lines joined by \n. */
export function cleanLog(lines: string[]): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const text = lines.map((l) => l.replace(/[\x00-\x1f\x7f]/g, ' ').trimEnd()).join('\n');
  return text.length > MAX_EXCERPT ? text.slice(0, MAX_EXCERPT) : text;
}

const TROUBLE: Array<[BadReason, RegExp]> = [
  ['panic', /Kernel panic - not syncing/],
  ['oops', /\bOops\b|^BUG: |general protection fault|kernel BUG at/],
  ['warn', /^WARNING: |-+\[ cut here \]-+/],
];

/** The worst trouble in these kernel log records, with an excerpt from its first line on. */
export function findTrouble(
  records: KernelLogRecord[],
): { reason: BadReason; kernelLog: string } | undefined {
  for (const [reason, re] of TROUBLE) {
    const at = records.findIndex((r) => re.test(r.text));
    if (at < 0) continue;
    const first = Math.max(0, records.findIndex((r) => TROUBLE.some(([, t]) => t.test(r.text))) - 1);
    return { reason, kernelLog: cleanLog(records.slice(first, first + 60).map((r) => r.text)) };
  }
  return undefined;
}

const REASONS: readonly string[] = ['oops', 'warn', 'panic', 'no-return'];

function parseBadMark(patch: string, text: string): BadMark {
  try {
    const v = JSON.parse(text) as Partial<BadMark>;
    if (typeof v.reason === 'string' && REASONS.includes(v.reason)) {
      return {
        patch,
        reason: v.reason as BadReason,
        kernelLog: typeof v.kernelLog === 'string' ? cleanLog(v.kernelLog.split('\n')) : '',
        at: typeof v.at === 'string' ? v.at : '',
        ...(typeof v.note === 'string' ? { note: v.note } : {}),
      };
    }
  } catch {
    // fall through: unreadable
  }
  return {
    patch,
    reason: 'no-return',
    kernelLog: '',
    at: '',
    note: 'the bad mark is incomplete (written half way, e.g. at a power loss): the patch stays bad',
  };
}

function guardEntries(roots: HostRoots): string[] {
  try {
    return readdirSync(guardDir(roots));
  } catch {
    return [];
  }
}

/**
 * Every patch marked bad, with attempt marks of earlier boots counted as `no-return` (without writing
 * anything: status reads this as any user).
 */
export function badPatches(roots: HostRoots): BadMark[] {
  const out = new Map<string, BadMark>();
  const boot = bootId(roots);
  for (const name of guardEntries(roots)) {
    const file = join(guardDir(roots), name);
    const bad = /^\.?bad-(.+?)\.json(?:\.tmp-\d+)?$/.exec(name);
    const attempt = /^attempt-(.+)\.json$/.exec(name);
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // unreadable: still a mark
    }
    if (bad) {
      const patch = bad[1] as string;
      const staged = name.startsWith('.');
      if (!staged || !out.has(patch)) out.set(patch, parseBadMark(patch, staged ? '' : text));
    } else if (attempt) {
      const patch = attempt[1] as string;
      let from: string | undefined;
      let at = '';
      try {
        const v = JSON.parse(text) as { bootId?: unknown; at?: unknown };
        from = typeof v.bootId === 'string' ? v.bootId : undefined;
        at = typeof v.at === 'string' ? v.at : '';
      } catch {
        from = undefined; // half-written attempt: the load never settled either
      }
      if (from === boot || out.has(patch)) continue;
      out.set(patch, {
        patch,
        reason: 'no-return',
        kernelLog: '',
        at,
        note: `loaded during boot ${from ?? '(unknown)'}, which never reported the load settled: the machine did not come back`,
      });
    }
  }
  return [...out.values()].sort((a, b) => a.patch.localeCompare(b.patch));
}

export function badMarkOf(roots: HostRoots, patch: string): BadMark | undefined {
  return badPatches(roots).find((b) => b.patch === patch);
}

function writeBad(roots: HostRoots, mark: BadMark): void {
  writeDurably(badFile(roots, mark.patch), `${JSON.stringify(mark, null, 2)}\n`);
}

/** At boot (root): turn attempt marks of earlier boots into bad marks on disk. Returns the new ones. */
export function settleEarlierBoots(roots: HostRoots): BadMark[] {
  const boot = bootId(roots);
  const made: BadMark[] = [];
  for (const m of badPatches(roots)) {
    const attempt = attemptFile(roots, m.patch);
    const bad = guardEntries(roots).includes(`bad-${m.patch}.json`);
    if (!bad) {
      writeBad(roots, m);
      made.push(m);
    }
    if (guardEntries(roots).includes(`attempt-${m.patch}.json`) && boot !== 'unknown') removeDurably(attempt);
  }
  return made;
}

export function badPatchError(mark: BadMark, loadedNow: boolean): SutureError {
  const what = { oops: 'an oops', warn: 'a WARN', panic: 'a panic', 'no-return': 'no return' }[mark.reason];
  return new SutureError({
    code: 'HOST-PATCH-BAD',
    message: loadedNow
      ? `${mark.patch} was loaded and the kernel logged ${what} right after: marked bad, never loaded again`
      : `${mark.patch} is marked bad (${mark.reason}${mark.at ? ` at ${mark.at}` : ''}): not loading it`,
    detail: [...(mark.note ? [mark.note] : []), ...mark.kernelLog.split('\n').filter(Boolean)],
    why: 'the crash-loop guard never loads a patch again after it hurt the kernel or the machine did not come back',
    hint: loadedNow
      ? `the patch stays loaded: \`suture revert ${mark.patch}\` if the machine is unwell; \`suture host clear-bad ${mark.patch}\` to allow it again`
      : `\`suture host clear-bad ${mark.patch}\` allows it again once you know it is safe`,
  });
}

/** Refuse a patch the guard marked bad. */
export function requireNotBad(roots: HostRoots, patch: string): void {
  const mark = badMarkOf(roots, patch);
  if (mark) throw badPatchError(mark, false);
}

/** Forget that a patch was bad (and any attempt mark of it). Returns whether anything was removed. */
export function clearBad(roots: HostRoots, patch: string): boolean {
  const gone = guardEntries(roots).filter(
    (n) =>
      n === `attempt-${patch}.json` || new RegExp(`^\\.?bad-${patch.replace(/\W/g, '\\$&')}\\.json`).test(n),
  );
  for (const n of gone) removeDurably(join(guardDir(roots), n));
  return gone.length > 0;
}

/**
 * Load `patch` under the guard: refuse it when bad, write the attempt mark, run `load`, then watch the
 * kernel log for `settleMs` and judge. A clean load returns load's value; trouble throws HOST-PATCH-BAD
 * (whether or not `load` itself succeeded), and a load failure without trouble is rethrown as it was.
 */
export async function guardedLoad<T>(
  roots: HostRoots,
  patch: string,
  settleMs: number,
  load: () => Promise<T>,
): Promise<T> {
  requireNotBad(roots, patch);
  const attempt = attemptFile(roots, patch);
  const log = KernelLogCursor.open(roots);
  writeDurably(
    attempt,
    `${JSON.stringify({ patch, bootId: bootId(roots), at: new Date().toISOString() })}\n`,
  );
  try {
    let value: T | undefined;
    let failure: unknown;
    let failed = false;
    try {
      value = await load();
    } catch (e) {
      failure = e;
      failed = true;
    }
    if (!failed && settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
    const trouble = findTrouble(log.since());
    if (trouble) {
      const mark: BadMark = { patch, ...trouble, at: new Date().toISOString() };
      writeBad(roots, mark);
      removeDurably(attempt);
      throw badPatchError(mark, !failed);
    }
    removeDurably(attempt);
    if (failed) throw failure;
    return value as T;
  } finally {
    log.close();
  }
}

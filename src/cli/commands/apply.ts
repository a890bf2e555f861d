/*
 * `suture apply <module.ko> [--manifest m.json] [--timeout 60s] [--settle 200ms] [--signal] [--force --i-understand-the-risk]`
 *
 * Verifies the module against the running kernel, loads it and follows the transition with a live
 * progress line; on a stall prints the tasks holding it back with their stacks. All decisions are in
 * src/host/; this file parses flags and prints events.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
// the modules apply needs, not host/index.js: every import is start-up time, seconds under TCG
import { applyLivepatch } from '../../host/apply.js';
import { FORCE_RISK, type TransitionEvent } from '../../host/events.js';
import { readManifest } from '../../host/manifest-read.js';
import { eventLines } from '../../host/report.js';
import { addCommand, type CommandSpec, type OptionSpec } from '../command-spec.js';

/** `60`, `60s`, `5m`, `500ms` → milliseconds */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const n = m ? Number(m[1]) : Number.NaN;
  const ms = !m ? Number.NaN : m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (!(ms > 0)) {
    throw new SutureError({
      code: 'CLI-BAD-DURATION',
      message: `${flag} ${JSON.stringify(value)} is not a positive duration`,
      hint: 'write seconds (60, 60s), minutes (5m) or milliseconds (500ms)',
    });
  }
  return ms;
}

/** Prints transition events: a rewritten progress line on a terminal, one line per second otherwise. */
export function eventPrinter(): (e: TransitionEvent) => void {
  const tty = process.stdout.isTTY === true;
  let lastProgressAt = 0;
  let pendingLine = '';
  let onLine = false;
  const flushProgress = () => {
    if (tty && onLine) {
      process.stdout.write('\n');
      onLine = false;
    } else if (!tty && pendingLine) {
      console.log(pendingLine);
    }
    pendingLine = '';
  };
  return (e) => {
    const lines = eventLines(e);
    if (e.type === 'progress') {
      const line = lines[0] ?? '';
      if (tty) {
        process.stdout.write(`\r\x1b[K${line}`);
        onLine = true;
      } else if (Date.now() - lastProgressAt >= 1000 || e.migrated === e.total) {
        lastProgressAt = Date.now();
        console.log(line);
        pendingLine = '';
      } else pendingLine = line;
      return;
    }
    flushProgress();
    for (const l of lines) console.log(l);
  };
}

interface ApplyOptions {
  manifest?: string;
  timeout: string;
  settle: string;
  signal?: boolean;
  force?: boolean;
  iUnderstandTheRisk?: boolean;
  persist?: boolean;
  json?: boolean;
}

function manifestOf(file: string): ReturnType<typeof readManifest> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SutureError({
      code: 'MANIFEST-UNREADABLE',
      message: `cannot read ${file}: ${(e as Error).message}`,
      location: { file },
      hint: 'pass the manifest.json written next to the module',
    });
  }
  return readManifest(text, file);
}

// the transition's options, the same on apply and revert (revert.ts)
export const TIMEOUT_OPTION: OptionSpec = {
  flags: '--timeout <duration>',
  description: 'wait this long for the transition before reporting stalled tasks',
  default: '60s',
};
export const SIGNAL_OPTION: OptionSpec = {
  flags: '--signal',
  description: 'at the timeout, SIGSTOP+SIGCONT the stalled user tasks and wait once more',
};
export const RISK_OPTION: OptionSpec = { flags: '--i-understand-the-risk', description: 'confirm --force' };

const apply: CommandSpec<ApplyOptions> = {
  path: ['apply'],
  description: 'verify a livepatch against the running kernel, load it and follow its transition',
  args: [{ name: 'module', description: 'livepatch .ko built by `suture build`' }],
  options: [
    {
      flags: '--manifest <file>',
      description: 'manifest.json written by `suture build` (verifies release, build id, sha256)',
    },
    TIMEOUT_OPTION,
    {
      flags: '--settle <duration>',
      description: 'after the transition, watch the kernel log this long for an oops/WARN (crash-loop guard)',
      default: '200ms',
    },
    SIGNAL_OPTION,
    { flags: '--force', description: 'at the timeout, force the transition (needs --i-understand-the-risk)' },
    RISK_OPTION,
    {
      flags: '--persist',
      description:
        'store the patch (with its manifest) so `suture host boot-apply` re-applies it after a reboot',
    },
    { flags: '--json', description: 'print the result as JSON' },
  ],
  async action([module], o) {
    const timeoutMs = parseDuration('--timeout', o.timeout);
    const manifest = o.manifest ? manifestOf(o.manifest) : undefined;
    if (o.force && !o.iUnderstandTheRisk) {
      throw new SutureError({
        code: 'HOST-FORCE-UNCONFIRMED',
        message: '--force needs --i-understand-the-risk',
        why: FORCE_RISK,
        hint: 'add --i-understand-the-risk if you accept that, or use --signal / a longer --timeout',
      });
    }
    if (o.force) console.log(`warning: --force given. ${FORCE_RISK}`);
    const print = o.json ? () => {} : eventPrinter();
    const r = await applyLivepatch({
      module: module as string,
      manifest,
      timeoutMs,
      signal: o.signal ?? false,
      force: o.force ?? false,
      forceConfirmed: o.iUnderstandTheRisk ?? false,
      persist: o.persist ?? false,
      settleMs: parseDuration('--settle', o.settle),
      onEvent: print,
    });
    if (o.json) console.log(JSON.stringify(r, null, 2));
    else
      console.log(
        `applied ${r.patch}: transition took ${(r.transitionMs / 1000).toFixed(2)} s${r.forced ? ' (forced)' : ''}`,
      );
  },
};

export const fast = [apply];

export function register(program: Command): void {
  addCommand(program, apply);
}

/*
 * How a VM session ends, and how that end reads as an error.
 *
 * A session runs until it is closed, its hard time limit kills QEMU, or QEMU exits on its own (a
 * panic with `panic=-1 -no-reboot`, a crash). A boot or a command cut short by that end fails with a
 * `VmBootError` that says which end it was, in the kernel's words when the console shows a problem,
 * and carries the console, the problems and what the command had printed so far.
 */
import { SutureError } from '../diagnostic.js';
import { type KernelProblem, worstProblem } from './problems.js';

export type VmEnd =
  | { kind: 'running' }
  | { kind: 'closed' }
  | { kind: 'timeout'; afterMs: number }
  | { kind: 'exited'; code: number | null; signal: string | null };

/** A boot that did not reach a usable guest. Carries what the console showed. */
export class VmBootError extends SutureError {
  constructor(
    code: string,
    message: string,
    readonly console: string,
    readonly problems: KernelProblem[],
    readonly bootMs: number,
    extra: { why?: string; hint?: string; detail?: string[] } = {},
    /** what the running command had printed when the VM went away */
    readonly output = '',
  ) {
    super({ code, message, ...extra });
  }
}

/** The last `lines` lines of `text`, without carriage returns. */
export function tail(text: string, lines: number): string[] {
  return text.replace(/\r/g, '').trimEnd().split('\n').slice(-lines);
}

/** What a session had seen when it ended. */
export interface SessionRecord {
  console: string;
  problems: KernelProblem[];
  qemuStderr: string;
  /** ms since QEMU started */
  elapsedMs: number;
}

/** The error for whatever was under way (`during`) when the session ended with `end`. */
export function endError(end: VmEnd, during: string, seen: SessionRecord, output = ''): VmBootError {
  const { console, problems, elapsedMs } = seen;
  const error = (code: string, message: string, extra: { hint?: string; detail?: string[] } = {}) =>
    new VmBootError(code, message, console, problems, elapsedMs, extra, output);
  if (end.kind === 'timeout') {
    return error('VM-TIMEOUT', `the VM hit its ${end.afterMs} ms time limit ${during}; QEMU was killed`, {
      detail: tail(console, 15),
      hint: 'raise timeoutMs or look at the console tail for a hang',
    });
  }
  if (end.kind === 'closed') return error('VM-CLOSED', `the VM was closed ${during}`);
  const worst = worstProblem(problems);
  if (worst) {
    return error(
      worst.kind === 'panic' ? 'VM-KERNEL-PANIC' : 'VM-KERNEL-DIED',
      `the kernel died ${during}: ${worst.title}`,
      { detail: worst.trace.split('\n').slice(0, 40) },
    );
  }
  const code = end.kind === 'exited' ? end.code : null;
  return error('VM-EXITED', `QEMU exited (status ${code}) ${during}`, {
    detail: [...tail(seen.qemuStderr, 10), ...tail(console, 15)],
  });
}

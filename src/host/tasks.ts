/*
 * Tasks and their patch state: the per-task side of the consistency model.
 *
 * During a transition every task (thread) carries a patch state in /proc/<pid>/task/<tid>/patch_state:
 * 0 = unpatched, 1 = patched, -1 = no transition. A task switches to the target state when the
 * kernel finds its stack free of the functions being replaced (sleeping tasks, checked about once a
 * second), when it returns to user space, or when the idle loop passes; `force` switches all at once.
 * This file reads those states, and for tasks that are holding the transition back, what they are
 * doing: command, scheduler state, kernel stack (/proc/<pid>/task/<tid>/stack) with the frames that
 * are patched functions marked, and their context-switch counts (a rise after the kernel's fake
 * signal round shows the kernel woke them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRoots } from './roots.js';

export interface TaskPatchState {
  pid: number;
  tid: number;
  state: number;
}

export interface StackFrame {
  /** the line as the kernel printed it, e.g. `[<0>] msleep_interruptible+0x2a/0x50` */
  raw: string;
  function: string;
  /** module in brackets after the symbol, undefined for vmlinux */
  module: string | undefined;
  /** set when the frame is a function that the transition replaces (or, for a revert, the replacement) */
  patched: boolean;
}

export interface StalledTask {
  pid: number;
  tid: number;
  comm: string;
  /** `S (sleeping)`, `R (running)`, `D (disk sleep)`... */
  state: string;
  kthread: boolean;
  patchState: number;
  voluntarySwitches: number | undefined;
  stack: StackFrame[];
  /** names of the patched functions found on the stack */
  onStack: string[];
}

export interface Progress {
  /** tasks already in the target state */
  migrated: number;
  /** tasks taking part in the transition (patch_state 0 or 1) */
  total: number;
  pending: TaskPatchState[];
}

const PF_KTHREAD = 0x00200000;

function numericDirs(dir: string): number[] {
  try {
    return readdirSync(dir)
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return [];
  }
}

const tryRead = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
};

/** Every thread's patch_state (threads that exit while we look are skipped). */
export function readPatchStates(roots: HostRoots): TaskPatchState[] {
  const out: TaskPatchState[] = [];
  for (const pid of numericDirs(roots.proc)) {
    for (const tid of numericDirs(join(roots.proc, String(pid), 'task'))) {
      const raw = tryRead(join(roots.proc, String(pid), 'task', String(tid), 'patch_state'));
      if (raw === undefined) continue;
      const state = Number.parseInt(raw.trim(), 10);
      if (Number.isFinite(state)) out.push({ pid, tid, state });
    }
  }
  return out;
}

export function progress(states: TaskPatchState[], target: 0 | 1): Progress {
  const taking = states.filter((s) => s.state === 0 || s.state === 1);
  const pending = taking.filter((s) => s.state !== target);
  return { migrated: taking.length - pending.length, total: taking.length, pending };
}

/** Functions that mark a frame: name → module (undefined = vmlinux) */
export interface PatchedSymbols {
  /** functions being replaced, with the object they live in (`vmlinux` or a module name) */
  funcs: Array<{ name: string; object: string }>;
  /** the livepatch module itself: its frames are the replacement code */
  patchModule: string;
}

export function parseStack(text: string, marks?: PatchedSymbols): StackFrame[] {
  const frames: StackFrame[] = [];
  for (const line of text.split('\n')) {
    const raw = line.trimEnd();
    if (!raw.trim()) continue;
    const m = /^\[<[0-9a-fx]+>\]\s+([^\s+]+)(?:\+0x[0-9a-f]+\/0x[0-9a-f]+)?(?:\s+\[([^\]]+)\])?/.exec(
      raw.trim(),
    );
    const fn = m?.[1] ?? raw.trim();
    const module = m?.[2];
    const patched =
      marks !== undefined &&
      (marks.funcs.some(
        (f) => f.name === fn && (f.object === 'vmlinux' ? module === undefined : module === f.object),
      ) ||
        module === marks.patchModule);
    frames.push({ raw, function: fn, module, patched });
  }
  return frames;
}

function statusField(status: string | undefined, key: string): string | undefined {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status ?? '');
  return m?.[1]?.trim();
}

export function describeTask(roots: HostRoots, t: TaskPatchState, marks?: PatchedSymbols): StalledTask {
  const base = join(roots.proc, String(t.pid), 'task', String(t.tid));
  const status = tryRead(join(base, 'status'));
  const stat = tryRead(join(base, 'stat'));
  // stat: "pid (comm) S ppid ..." — comm may hold spaces and parens, so split after the last ')'
  let flags = 0;
  if (stat) {
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    flags = Number.parseInt(rest[6] ?? '0', 10) || 0;
  }
  const comm = (tryRead(join(base, 'comm')) ?? statusField(status, 'Name') ?? '?').trim();
  const vol = statusField(status, 'voluntary_ctxt_switches');
  const stack = parseStack(tryRead(join(base, 'stack')) ?? '', marks);
  const onStack = [...new Set(stack.filter((f) => f.patched).map((f) => f.function))];
  return {
    pid: t.pid,
    tid: t.tid,
    comm,
    state: statusField(status, 'State') ?? '?',
    kthread: (flags & PF_KTHREAD) !== 0,
    patchState: t.state,
    voluntarySwitches: vol === undefined ? undefined : Number.parseInt(vol, 10),
    stack,
    onStack,
  };
}

/** A pending task as report lines: header, then its kernel stack with patched frames marked. */
export function formatStalledTask(t: StalledTask): string[] {
  const head = `${t.kthread ? 'kthread' : 'task'} ${t.comm} pid ${t.pid}${t.tid !== t.pid ? ` tid ${t.tid}` : ''} state ${t.state}${t.onStack.length ? ` — sleeping in ${t.onStack.join(', ')}` : ''}`;
  const frames = t.stack.length
    ? t.stack.map((f) => `  ${f.patched ? '>>' : '  '} ${f.raw.trim()}`)
    : ['     (no kernel stack readable)'];
  return [head, ...frames];
}

/*
 * Following a transition: from "the kernel started switching tasks" to "every task runs the target
 * code", with progress, the kernel's signalling rounds, and who is holding it back.
 *
 * The kernel (kernel/livepatch/transition.c, 6.1) retries klp_try_complete_transition() about once a
 * second; every task whose stack holds none of the functions being replaced is switched. On every
 * 15th retry (SIGNALS_TIMEOUT) klp_send_signals() wakes the kthreads that still have TIF_PATCH_PENDING
 * and sleep interruptibly (wake_up_state(TASK_INTERRUPTIBLE)) and sends user tasks a fake signal
 * (set_notify_signal), so that they pass through the kernel exit path and switch. It logs "signaling
 * remaining tasks" for the first round only. A kthread woken this way that goes straight back to
 * sleep in the same function does not switch: only its stack matters.
 *
 * At the timeout this reports the pending tasks with their stacks. Then, in order: `signal` sends
 * SIGSTOP+SIGCONT to pending user tasks (the blog's advice for I/O-bound tasks) and waits one more
 * timeout; `force` writes 1 to the patch's `force` attribute (the kernel marks all tasks migrated);
 * otherwise the caller reverses the transition.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';
import { type EventSink, FORCE_RISK, type SignalRound } from './events.js';
import type { KernelLogCursor } from './kmsg.js';
import { livepatchRoot, readLivepatch } from './livepatch.js';
import type { HostRoots } from './roots.js';
import {
  describeTask,
  type PatchedSymbols,
  progress,
  readPatchStates,
  type StalledTask,
  type TaskPatchState,
} from './tasks.js';

/** The kernel's round period: SIGNALS_TIMEOUT (15) retries of about one second each. */
export const KERNEL_SIGNAL_PERIOD_MS = 15_000;

export interface FollowOptions {
  patch: string;
  target: 0 | 1;
  /** when the transition started (Date.now()), for elapsed times and the signalling schedule */
  startedAt: number;
  timeoutMs: number;
  signal: boolean;
  force: boolean;
  log: KernelLogCursor;
  onEvent: EventSink;
  marks: PatchedSymbols;
  pollMs?: number;
  scanMs?: number;
  signalPeriodMs?: number;
}

export interface TransitionOutcome {
  completed: boolean;
  forced: boolean;
  elapsedMs: number;
  rounds: SignalRound[];
  /** tasks pending at the first timeout (empty when it completed in time) */
  stalled: StalledTask[];
  /** user processes sent SIGSTOP+SIGCONT */
  signalled: number[];
  /** the patch disappeared or was reversed by someone else */
  interrupted?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readVolSwitches(roots: HostRoots, tasks: TaskPatchState[]): Map<number, number | undefined> {
  const m = new Map<number, number | undefined>();
  for (const t of tasks) m.set(t.tid, describeTask(roots, t).voluntarySwitches);
  return m;
}

export function writeAttribute(roots: HostRoots, patch: string, attr: string, value: string): void {
  const file = join(livepatchRoot(roots), patch, attr);
  try {
    writeFileSync(file, value);
    roots.afterWrite?.(file, value);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SutureError({
      code: 'HOST-SYSFS-WRITE',
      message: `writing ${value} to ${file} failed: ${err.code ?? err.message}`,
      location: { file },
      why:
        err.code === 'EINVAL'
          ? 'the kernel refused the value: the patch is already in that state, or another transition is running'
          : err.code === 'EBUSY'
            ? 'another livepatch transition is in progress'
            : err.message,
      hint: 'run `suture status` to see the patch and transition state',
    });
  }
}

export async function followTransition(roots: HostRoots, o: FollowOptions): Promise<TransitionOutcome> {
  const pollMs = o.pollMs ?? 100;
  const scanMs = o.scanMs ?? 500;
  const period = o.signalPeriodMs ?? KERNEL_SIGNAL_PERIOD_MS;
  const out: TransitionOutcome = {
    completed: false,
    forced: false,
    elapsedMs: 0,
    rounds: [],
    stalled: [],
    signalled: [],
  };
  let deadline = o.startedAt + o.timeoutMs;
  let signalled = false;
  let lastScan = 0;
  let lastKey = '';
  let lastTotal = 0;
  let pending: TaskPatchState[] = [];
  let switches = new Map<number, number | undefined>();
  // a round seen (or due) but not yet evaluated: we wait one scan so woken tasks have run
  let roundDue:
    | {
        round: number;
        elapsedMs: number;
        source: SignalRound['source'];
        before: Map<number, number | undefined>;
        pendingBefore: number;
      }
    | undefined;
  let roundsSeen = 0;

  const scan = (now: number, settle = false, final = false) => {
    lastScan = now;
    let p = progress(readPatchStates(roots), o.target);
    // once complete the kernel resets every task to -1: report the last count as all migrated
    if (final && p.total === 0) p = { migrated: lastTotal, total: lastTotal, pending: [] };
    lastTotal = p.total;
    pending = p.pending;
    if (final && p.total === 0) return;
    const key = `${p.migrated}/${p.total}`;
    if (key !== lastKey) {
      lastKey = key;
      o.onEvent({
        type: 'progress',
        patch: o.patch,
        target: o.target,
        migrated: p.migrated,
        total: p.total,
        elapsedMs: now - o.startedAt,
      });
    }
    if (roundDue && (settle || now - o.startedAt >= roundDue.elapsedMs + scanMs)) {
      const after = readVolSwitches(roots, pending);
      const woken: SignalRound['woken'] = [];
      for (const t of pending) {
        const b = roundDue.before.get(t.tid);
        const a = after.get(t.tid);
        if (b !== undefined && a !== undefined && a > b) {
          const d = describeTask(roots, t);
          woken.push({ pid: t.pid, tid: t.tid, comm: d.comm, kthread: d.kthread });
        }
      }
      const round: SignalRound = {
        round: roundDue.round,
        elapsedMs: roundDue.elapsedMs,
        source: roundDue.source,
        woken,
        migrated: Math.max(0, roundDue.pendingBefore - pending.length),
        stillPending: pending.length,
      };
      out.rounds.push(round);
      o.onEvent({ type: 'signal-round', patch: o.patch, ...round });
      roundDue = undefined;
    }
    if (!roundDue) switches = readVolSwitches(roots, pending);
  };

  for (;;) {
    const now = Date.now();
    out.elapsedMs = now - o.startedAt;
    for (const r of o.log.since()) {
      if (/livepatch|klp|patch/i.test(r.text)) o.onEvent({ type: 'kernel-log', text: r.text });
      if (/signaling remaining tasks/.test(r.text) && !roundDue) {
        roundsSeen++;
        roundDue = {
          round: roundsSeen,
          elapsedMs: out.elapsedMs,
          source: 'kernel-log',
          before: switches,
          pendingBefore: pending.length,
        };
      }
    }
    const p = readLivepatch(roots, o.patch);
    const done = !p ? o.target === 0 : !p.transition && p.enabled === (o.target === 1);
    if (done) {
      scan(now, true, true);
      out.completed = true;
      o.onEvent({
        type: 'complete',
        patch: o.patch,
        target: o.target,
        elapsedMs: out.elapsedMs,
        forced: out.forced,
      });
      return out;
    }
    if (!p?.transition) {
      out.interrupted = p
        ? `the transition was reversed (enabled is now ${p.enabled ? 1 : 0})`
        : `${o.patch} left /sys/kernel/livepatch`;
      return out;
    }
    // the kernel is silent about rounds after the first: infer them from its schedule
    const nextRound = roundsSeen + 1;
    const due = nextRound * period + (nextRound === 1 ? 3000 : 1500);
    if (!roundDue && out.elapsedMs >= due) {
      roundsSeen = nextRound;
      roundDue = {
        round: nextRound,
        elapsedMs: nextRound * period,
        source: 'schedule',
        before: switches,
        pendingBefore: pending.length,
      };
    }
    if (now - lastScan >= scanMs) scan(now);

    if (now >= deadline) {
      scan(now, true);
      const marks = o.marks;
      const stalled = pending.map((t) => describeTask(roots, t, marks));
      if (!out.stalled.length) out.stalled = stalled;
      o.onEvent({ type: 'stalled', patch: o.patch, elapsedMs: out.elapsedMs, tasks: stalled });
      if (o.signal && !signalled) {
        signalled = true;
        const users = new Map<number, string>();
        for (const t of stalled) if (!t.kthread) users.set(t.pid, t.comm);
        for (const pid of users.keys()) {
          try {
            roots.kill(pid, 'SIGSTOP');
            roots.kill(pid, 'SIGCONT');
            out.signalled.push(pid);
          } catch {
            // exited meanwhile
          }
        }
        o.onEvent({
          type: 'sigstop',
          patch: o.patch,
          tasks: [...users].map(([pid, comm]) => ({ pid, comm })),
        });
        deadline = Date.now() + o.timeoutMs;
        continue;
      }
      if (o.force && !out.forced) {
        if (!p.attributes.includes('force')) {
          throw new SutureError({
            code: 'HOST-NO-FORCE',
            message: `${o.patch} has no 'force' attribute: this kernel cannot force a transition`,
            hint: 'wait for the pending tasks to leave the patched functions, or revert',
          });
        }
        o.onEvent({ type: 'forcing', patch: o.patch, risk: FORCE_RISK });
        writeAttribute(roots, o.patch, 'force', '1');
        out.forced = true;
        // the kernel completes on its next retry (about a second)
        deadline = Date.now() + Math.max(5000, o.timeoutMs);
        continue;
      }
      return out;
    }
    await sleep(pollMs);
  }
}

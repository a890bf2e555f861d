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
import { type EventSink, FORCE_RISK, KERNEL_SIGNAL_PERIOD_MS, type SignalRound } from './events.js';
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

export { KERNEL_SIGNAL_PERIOD_MS };

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

/** A signalling round seen (or due) but not yet evaluated: we wait one scan so woken tasks have run. */
interface RoundDue {
  round: number;
  elapsedMs: number;
  source: SignalRound['source'];
  before: Map<number, number | undefined>;
  pendingBefore: number;
}

/** Has the patch reached the target state (for target 0, also: it left sysfs)? */
function reachedTarget(p: ReturnType<typeof readLivepatch>, target: 0 | 1): boolean {
  return !p ? target === 0 : !p.transition && p.enabled === (target === 1);
}

/** One transition being followed: what is pending, the signalling rounds, the deadline, the outcome. */
class TransitionWatch {
  readonly out: TransitionOutcome = {
    completed: false,
    forced: false,
    elapsedMs: 0,
    rounds: [],
    stalled: [],
    signalled: [],
  };
  readonly scanMs: number;
  private readonly period: number;
  deadline: number;
  lastScan = 0;
  private signalled = false;
  private lastKey = '';
  private lastTotal = 0;
  private pending: TaskPatchState[] = [];
  private switches = new Map<number, number | undefined>();
  /** pending count and switch counts as of the last kernel log read (before any scan since) */
  private atLastRead = { pending: 0, switches: this.switches };
  private roundDue: RoundDue | undefined;
  private roundsSeen = 0;

  constructor(
    private readonly roots: HostRoots,
    private readonly o: FollowOptions,
  ) {
    this.scanMs = o.scanMs ?? 500;
    this.period = o.signalPeriodMs ?? KERNEL_SIGNAL_PERIOD_MS;
    this.deadline = o.startedAt + o.timeoutMs;
  }

  private dueRound(
    round: number,
    elapsedMs: number,
    source: SignalRound['source'],
    before = { pending: this.pending.length, switches: this.switches },
  ): void {
    this.roundsSeen = round;
    this.roundDue = { round, elapsedMs, source, before: before.switches, pendingBefore: before.pending };
  }

  /**
   * Pass the kernel's livepatch messages on; its first "signaling remaining tasks" opens round 1. The
   * line was printed after the previous read, so the round starts from the state as of that read: a
   * scan in between may already have seen the tasks the kernel's signal switched.
   */
  readKernelLog(): void {
    for (const r of this.o.log.since()) {
      if (/livepatch|klp|patch/i.test(r.text)) this.o.onEvent({ type: 'kernel-log', text: r.text });
      if (/signaling remaining tasks/.test(r.text) && !this.roundDue)
        this.dueRound(this.roundsSeen + 1, this.out.elapsedMs, 'kernel-log', this.atLastRead);
    }
    this.atLastRead = { pending: this.pending.length, switches: this.switches };
  }

  /** The kernel is silent about rounds after the first: infer them from its schedule. */
  inferScheduledRound(): void {
    const next = this.roundsSeen + 1;
    const due = next * this.period + (next === 1 ? 3000 : 1500);
    if (!this.roundDue && this.out.elapsedMs >= due) this.dueRound(next, next * this.period, 'schedule');
  }

  /** Read the tasks' patch states, report progress, and evaluate a due round once woken tasks have run. */
  scan(now: number, settle = false, final = false): void {
    this.lastScan = now;
    let p = progress(readPatchStates(this.roots), this.o.target);
    // once complete the kernel resets every task to -1: report the last count as all migrated
    if (final && p.total === 0) p = { migrated: this.lastTotal, total: this.lastTotal, pending: [] };
    this.lastTotal = p.total;
    this.pending = p.pending;
    if (final && p.total === 0) return;
    const key = `${p.migrated}/${p.total}`;
    if (key !== this.lastKey) {
      this.lastKey = key;
      this.o.onEvent({
        type: 'progress',
        patch: this.o.patch,
        target: this.o.target,
        migrated: p.migrated,
        total: p.total,
        elapsedMs: now - this.o.startedAt,
      });
    }
    const due = this.roundDue;
    if (due && (settle || now - this.o.startedAt >= due.elapsedMs + this.scanMs)) this.closeRound(due);
    if (!this.roundDue) this.switches = readVolSwitches(this.roots, this.pending);
  }

  /** A round's result: the pending tasks that ran since it (voluntary switches went up) and who migrated. */
  private closeRound(due: RoundDue): void {
    const after = readVolSwitches(this.roots, this.pending);
    const woken: SignalRound['woken'] = [];
    for (const t of this.pending) {
      const b = due.before.get(t.tid);
      const a = after.get(t.tid);
      if (b !== undefined && a !== undefined && a > b) {
        const d = describeTask(this.roots, t);
        woken.push({ pid: t.pid, tid: t.tid, comm: d.comm, kthread: d.kthread });
      }
    }
    const round: SignalRound = {
      round: due.round,
      elapsedMs: due.elapsedMs,
      source: due.source,
      woken,
      migrated: Math.max(0, due.pendingBefore - this.pending.length),
      stillPending: this.pending.length,
    };
    this.out.rounds.push(round);
    this.o.onEvent({ type: 'signal-round', patch: this.o.patch, ...round });
    this.roundDue = undefined;
  }

  complete(now: number): TransitionOutcome {
    this.scan(now, true, true);
    this.out.completed = true;
    const { patch, target } = this.o;
    const { elapsedMs, forced } = this.out;
    this.o.onEvent({ type: 'complete', patch, target, elapsedMs, forced });
    return this.out;
  }

  interrupt(p: ReturnType<typeof readLivepatch>): TransitionOutcome {
    this.out.interrupted = p
      ? `the transition was reversed (enabled is now ${p.enabled ? 1 : 0})`
      : `${this.o.patch} left /sys/kernel/livepatch`;
    return this.out;
  }

  /**
   * The timeout: report the pending tasks, then signal them (once) or force (once), each with a new
   * deadline. Returns false when there is nothing left to try.
   */
  atDeadline(now: number, attributes: string[]): boolean {
    this.scan(now, true);
    const stalled = this.pending.map((t) => describeTask(this.roots, t, this.o.marks));
    if (!this.out.stalled.length) this.out.stalled = stalled;
    this.o.onEvent({ type: 'stalled', patch: this.o.patch, elapsedMs: this.out.elapsedMs, tasks: stalled });
    if (this.o.signal && !this.signalled) {
      this.signalled = true;
      this.stopAndContinue(stalled);
      this.deadline = Date.now() + this.o.timeoutMs;
      return true;
    }
    if (this.o.force && !this.out.forced) {
      this.force(attributes);
      // the kernel completes on its next retry (about a second)
      this.deadline = Date.now() + Math.max(5000, this.o.timeoutMs);
      return true;
    }
    return false;
  }

  /** SIGSTOP+SIGCONT to the pending user tasks, so they pass through the kernel exit path and switch. */
  private stopAndContinue(stalled: StalledTask[]): void {
    const users = new Map<number, string>();
    for (const t of stalled) if (!t.kthread) users.set(t.pid, t.comm);
    for (const pid of users.keys()) {
      try {
        this.roots.kill(pid, 'SIGSTOP');
        this.roots.kill(pid, 'SIGCONT');
        this.out.signalled.push(pid);
      } catch {
        // exited meanwhile
      }
    }
    const tasks = [...users].map(([pid, comm]) => ({ pid, comm }));
    this.o.onEvent({ type: 'sigstop', patch: this.o.patch, tasks });
  }

  private force(attributes: string[]): void {
    if (!attributes.includes('force')) {
      throw new SutureError({
        code: 'HOST-NO-FORCE',
        message: `${this.o.patch} has no 'force' attribute: this kernel cannot force a transition`,
        hint: 'wait for the pending tasks to leave the patched functions, or revert',
      });
    }
    this.o.onEvent({ type: 'forcing', patch: this.o.patch, risk: FORCE_RISK });
    writeAttribute(this.roots, this.o.patch, 'force', '1');
    this.out.forced = true;
  }
}

/**
 * Follow a transition to its target: poll the patch's state, pass on the kernel's messages, scan the
 * tasks, and at the timeout signal, force or give up (the caller reverses).
 */
export async function followTransition(roots: HostRoots, o: FollowOptions): Promise<TransitionOutcome> {
  const pollMs = o.pollMs ?? 100;
  const watch = new TransitionWatch(roots, o);
  for (;;) {
    const now = Date.now();
    watch.out.elapsedMs = now - o.startedAt;
    watch.readKernelLog();
    const p = readLivepatch(roots, o.patch);
    if (reachedTarget(p, o.target)) return watch.complete(now);
    if (!p?.transition) return watch.interrupt(p);
    watch.inferScheduledRound();
    if (now - watch.lastScan >= watch.scanMs) watch.scan(now);
    if (now >= watch.deadline) {
      if (watch.atDeadline(now, p.attributes)) continue;
      return watch.out;
    }
    await sleep(pollMs);
  }
}

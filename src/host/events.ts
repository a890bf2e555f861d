/*
 * Transition events: what apply and revert narrate while they work.
 *
 * The library never prints; it hands these values to the caller's `onEvent` (the CLI renders them as
 * a progress line and a report, the agent logs them and sends them to the server). They are plain
 * data so they can be serialized as they are.
 */
import type { StalledTask } from './tasks.js';

/** The kernel's round period: SIGNALS_TIMEOUT (15) retries of about one second each. Here, not in
 * transition.ts, so the report (and `suture status`) can name it without loading the follower. */
export const KERNEL_SIGNAL_PERIOD_MS = 15_000;

/** One round of the kernel's own fake signals (klp_send_signals, every 15 s of an unfinished transition). */
export interface SignalRound {
  round: number;
  /** milliseconds since the module was loaded (or the revert started) */
  elapsedMs: number;
  /** `kernel-log`: the kernel printed "signaling remaining tasks" (6.1 prints it for the first round only);
   *  `schedule`: inferred from the 15 s period because the kernel is silent about later rounds */
  source: 'kernel-log' | 'schedule';
  /** pending tasks whose voluntary context switches rose across the round: the kernel woke them
   *  (kthreads sleeping interruptibly are woken; user tasks get a fake signal) */
  woken: Array<{ pid: number; tid: number; comm: string; kthread: boolean }>;
  /** tasks that reached the target state across the round */
  migrated: number;
  /** tasks still pending after the round */
  stillPending: number;
}

export type TransitionEvent =
  | {
      type: 'checked';
      module: string;
      patch: string;
      release: string;
      buildId: string | undefined;
      verified: string[];
    }
  | { type: 'loading'; file: string; patch: string }
  | { type: 'loaded'; patch: string; ms: number }
  | { type: 'disabling'; patch: string }
  | { type: 'progress'; patch: string; target: 0 | 1; migrated: number; total: number; elapsedMs: number }
  | { type: 'kernel-log'; text: string }
  | ({ type: 'signal-round'; patch: string } & SignalRound)
  | { type: 'stalled'; patch: string; elapsedMs: number; tasks: StalledTask[] }
  | { type: 'sigstop'; patch: string; tasks: Array<{ pid: number; comm: string }> }
  | { type: 'forcing'; patch: string; risk: string }
  | { type: 'reversing'; patch: string; reason: string }
  | { type: 'complete'; patch: string; target: 0 | 1; elapsedMs: number; forced: boolean }
  | { type: 'replaced'; patch: string; replaced: string[] }
  | { type: 'unloaded'; module: string }
  | { type: 'note'; text: string };

export type EventSink = (e: TransitionEvent) => void;

export const FORCE_RISK =
  'forcing marks every remaining task as migrated without checking its stack: a task sleeping inside a ' +
  'replaced function will return into the OLD code while new callers run the NEW code, so old and new ' +
  'versions run side by side (the consistency model is broken for it). If the patch changes semantics ' +
  'shared between the two, this can corrupt data or crash the kernel. A patch forced while being removed ' +
  'can never be unloaded.';

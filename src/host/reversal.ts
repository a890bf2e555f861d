/*
 * Undoing a transition that did not complete: the one way back for both directions.
 *
 * An apply whose patching transition stalls is reversed (enabled 0: tasks go back to the old code) and
 * its module removed; a revert whose unpatching transition stalls is reversed too (enabled 1: the
 * patch stays applied). Either way the tasks that held it back are reported, and the machine is left
 * as it was. When the reversal does not complete either, the kernel keeps retrying it by itself and
 * the refusal says so (HOST-REVERSE-STALLED). Both operations follow their transitions with the same
 * options (followOptions): only the target, the start and whether --signal/--force apply differ.
 */
import { SutureError } from '../diagnostic.js';
import type { EventSink } from './events.js';
import type { KernelLogCursor } from './kmsg.js';
import { readLivepatch } from './livepatch.js';
import type { HostRoots } from './roots.js';
import { formatStalledTask, type PatchedSymbols } from './tasks.js';
import {
  type FollowOptions,
  followTransition,
  type TransitionOutcome,
  writeAttribute,
} from './transition.js';
import { unloadModule } from './unload.js';

/** What the stalled transition was doing: loading a patch (apply) or removing it (revert). */
export type Direction = 'patching' | 'unpatching';

/** The options of apply and revert that shape how a transition is followed. */
export interface FollowKnobs {
  timeoutMs?: number;
  signal?: boolean;
  force?: boolean;
  onEvent?: EventSink;
  pollMs?: number;
  scanMs?: number;
  signalPeriodMs?: number;
}

/** Follow options of one operation; `escalate` lets --signal/--force act (never on the way back). */
export type Follow = (target: 0 | 1, startedAt: number, escalate: boolean) => FollowOptions;

export function followOptions(
  knobs: FollowKnobs,
  patch: string,
  log: KernelLogCursor,
  marks: PatchedSymbols,
): Follow {
  return (target, startedAt, escalate) => ({
    patch,
    target,
    startedAt,
    timeoutMs: knobs.timeoutMs ?? 60_000,
    signal: escalate && (knobs.signal ?? false),
    force: escalate && (knobs.force ?? false),
    log,
    onEvent: knobs.onEvent ?? (() => {}),
    marks,
    pollMs: knobs.pollMs,
    scanMs: knobs.scanMs,
    signalPeriodMs: knobs.signalPeriodMs,
  });
}

/** The state each direction's reversal returns to: the value written to `enabled`. */
const BACK_TO: Record<Direction, 0 | 1> = { patching: 0, unpatching: 1 };

/** How a stalled transition's refusal reads: once reversed (timeout), and when the reversal stalls too. */
interface Wording {
  reversed: string;
  why: string;
  hint: string;
  reverseStalled: { message: string; why: string; hint: string };
}

function wording(direction: Direction, patch: string, reason: string): Wording {
  if (direction === 'patching') {
    return {
      reversed: 'reversed and unloaded, the machine is as it was',
      why: 'these tasks sleep inside functions the patch replaces, so the kernel cannot switch them safely',
      hint: 'retry later, with a longer --timeout, with --signal (user tasks), or with --force --i-understand-the-risk',
      reverseStalled: {
        message: `${patch} did not complete, and reversing it has not completed either`,
        why: 'the tasks above hold the patched functions; the kernel keeps retrying the reversal by itself',
        hint: `watch \`suture status\`; once the reversal completes, \`suture revert ${patch}\` unloads the module`,
      },
    };
  }
  const why =
    "these tasks sleep inside the patch's replacement functions, so the kernel cannot switch them back safely";
  const hint = 'retry later, with a longer --timeout, or --signal for user tasks';
  return {
    reversed: 're-enabled, the patch stays applied as before',
    why,
    hint,
    reverseStalled: {
      message: `${patch}: ${reason}, and re-enabling it has not completed either`,
      why,
      hint,
    },
  };
}

/**
 * A transition that did not complete: reverse it (and after a stalled apply, unload the module), then
 * refuse with the stalled tasks (HOST-TRANSITION-TIMEOUT), or HOST-REVERSE-STALLED when the reversal
 * does not complete either.
 */
export async function reverseAndRefuse(
  roots: HostRoots,
  patch: string,
  direction: Direction,
  outcome: TransitionOutcome,
  follow: Follow,
  emit: EventSink,
): Promise<never> {
  const what = direction === 'patching' ? 'transition' : 'unpatching';
  const reason =
    outcome.interrupted ?? `${what} not complete after ${Math.round(outcome.elapsedMs / 1000)} s`;
  emit({ type: 'reversing', patch, reason });
  const target = BACK_TO[direction];
  const still = readLivepatch(roots, patch);
  if (still?.transition && still.enabled !== (target === 1))
    writeAttribute(roots, patch, 'enabled', String(target));
  const back = await followTransition(roots, follow(target, Date.now(), false));
  const detail = outcome.stalled.flatMap(formatStalledTask);
  const words = wording(direction, patch, reason);
  if (!back.completed)
    throw new SutureError({ code: 'HOST-REVERSE-STALLED', detail, ...words.reverseStalled });
  if (direction === 'patching') {
    await unloadModule(roots, patch);
    emit({ type: 'unloaded', module: patch });
  }
  throw new SutureError({
    code: 'HOST-TRANSITION-TIMEOUT',
    message: `${patch}: ${reason}; ${words.reversed}`,
    detail,
    why: words.why,
    hint: words.hint,
  });
}

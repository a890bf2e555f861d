/*
 * Reverting a livepatch: the unpatching transition, then the module's removal.
 *
 * Writing 0 to `enabled` starts the reverse transition (during a patching transition it reverses
 * it). Tasks switch back under the same consistency model, so the same progress and stall reporting
 * applies: a task sleeping inside a replacement function (the livepatch module's code) holds it back.
 * When the unpatching transition does not complete in time and is not forced, it is reversed again,
 * leaving the patch applied as it was. A patch the kernel no longer uses (replaced by a cumulative
 * patch, or disabled) only needs its module removed.
 */
import { SutureError } from '../diagnostic.js';
import { patchedSymbols } from './apply.js';
import type { EventSink, SignalRound } from './events.js';
import { readJournal, record, replacedBy } from './journal.js';
import { KernelLogCursor } from './kmsg.js';
import {
  isModuleLoaded,
  type Livepatch,
  readLivepatch,
  readLivepatches,
  requireLivepatchSupport,
  requireRoot,
} from './livepatch.js';
import { followOptions, reverseAndRefuse } from './reversal.js';
import { type HostRoots, resolveRoots } from './roots.js';
import { removeStored } from './store.js';
import type { StalledTask } from './tasks.js';
import { followTransition, writeAttribute } from './transition.js';
import { unloadModule } from './unload.js';

export interface RevertOptions {
  timeoutMs?: number;
  signal?: boolean;
  force?: boolean;
  forceConfirmed?: boolean;
  /** leave the module loaded after the patch is disabled */
  keepModule?: boolean;
  onEvent?: EventSink;
  roots?: Partial<HostRoots>;
  pollMs?: number;
  scanMs?: number;
  signalPeriodMs?: number;
}

export interface RevertResult {
  patch: string;
  /** false when the patch was already inactive (replaced/disabled) and only the module was removed */
  transitioned: boolean;
  transitionMs: number;
  forced: boolean;
  rounds: SignalRound[];
  stalled: StalledTask[];
  unloaded: boolean;
}

/** `livepatch-cmdline`, `livepatch_cmdline.ko`, `/path/livepatch-cmdline.ko` → `livepatch_cmdline` */
export function patchName(arg: string): string {
  return (arg.split('/').pop() ?? arg).replace(/\.ko$/, '').replace(/-/g, '_');
}

/** A patch forced while being removed can never be unloaded: only with the explicit confirmation. */
function requireForceConfirmed(opts: RevertOptions): void {
  if (opts.force && !opts.forceConfirmed) {
    throw new SutureError({
      code: 'HOST-FORCE-UNCONFIRMED',
      message: 'forcing a transition needs an explicit confirmation',
      why: 'force skips the consistency model; a patch forced while being removed can never be unloaded',
      hint: 'add --i-understand-the-risk to --force if you accept that',
    });
  }
}

/** A patch gone from sysfs: its module must still be loaded (then only the module is removed). */
function requireInactiveModule(roots: HostRoots, patch: string, emit: EventSink): void {
  if (!isModuleLoaded(roots, patch)) {
    const known = readLivepatches(roots).map((p) => `${p.name} (${p.state})`);
    throw new SutureError({
      code: 'HOST-NO-SUCH-PATCH',
      message: `no livepatch named ${patch} is loaded`,
      detail: known.length ? known : ['(no livepatches loaded)'],
      hint: 'see `suture list` for the names',
    });
  }
  const by = replacedBy(readJournal(roots), patch);
  emit({
    type: 'note',
    text: `${patch} is no longer active (${by ? `replaced by ${by}` : 'disabled or replaced'}); removing its module`,
  });
}

/** Disable the patch (unless its removal is already under way) and follow the unpatching transition. */
async function unpatch(
  roots: HostRoots,
  patch: string,
  state: Livepatch,
  opts: RevertOptions,
  result: RevertResult,
): Promise<void> {
  const emit: EventSink = opts.onEvent ?? (() => {});
  const log = KernelLogCursor.open(roots);
  try {
    if (state.transition && !state.enabled) {
      emit({ type: 'note', text: `${patch} is already being removed; following the transition` });
    } else {
      emit({ type: 'disabling', patch });
      writeAttribute(roots, patch, 'enabled', '0');
    }
    const follow = followOptions(opts, patch, log, patchedSymbols(roots, patch));
    const outcome = await followTransition(roots, follow(0, Date.now(), true));
    result.transitioned = true;
    result.transitionMs = outcome.elapsedMs;
    result.forced = outcome.forced;
    result.rounds = outcome.rounds;
    result.stalled = outcome.stalled;
    if (!outcome.completed) await reverseAndRefuse(roots, patch, 'unpatching', outcome, follow, emit);
  } finally {
    log.close();
  }
}

/**
 * Revert a livepatch: disable it and follow the unpatching transition (or, for a patch the kernel no
 * longer uses, go straight on), record it, forget it for boot, and remove its module.
 */
export async function revertLivepatch(name: string, opts: RevertOptions = {}): Promise<RevertResult> {
  const roots = resolveRoots(opts.roots);
  const emit: EventSink = opts.onEvent ?? (() => {});
  requireForceConfirmed(opts);
  requireRoot(roots, 'reverting a livepatch');
  requireLivepatchSupport(roots);
  const patch = patchName(name);
  const state = readLivepatch(roots, patch);
  const result: RevertResult = {
    patch,
    transitioned: false,
    transitionMs: 0,
    forced: false,
    rounds: [],
    stalled: [],
    unloaded: false,
  };
  if (state) await unpatch(roots, patch, state, opts, result);
  else requireInactiveModule(roots, patch, emit);
  record(roots, { action: 'revert', patch, forced: result.forced });
  removeStored(roots, patch);
  if (!opts.keepModule) {
    await unloadModule(roots, patch);
    result.unloaded = true;
    emit({ type: 'unloaded', module: patch });
  }
  return result;
}

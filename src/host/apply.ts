/*
 * Applying a livepatch: verify, load, follow the transition, and undo everything if it fails.
 *
 * Nothing touches the kernel until the module has proved it belongs here (verify.ts). Only then is the
 * module inserted; the kernel starts the patching transition from the module's init (klp_enable_patch).
 * When loading fails, the kernel's own words are collected from its log. When the transition does not
 * complete in time (and neither --signal nor --force finish it), the transition is reversed and the
 * module removed, so a failed apply leaves the machine as it was. applyLivepatch is the list of these
 * steps, each a named function below.
 */
import { SutureError } from '../diagnostic.js';
import type { Manifest } from '../manifest/manifest.js';
import type { EventSink, SignalRound } from './events.js';
import { DEFAULT_SETTLE_MS, guardedLoad } from './guard.js';
import { record } from './journal.js';
import { KernelLogCursor } from './kmsg.js';
import {
  isModuleLoaded,
  readLivepatch,
  readLivepatches,
  requireLivepatchSupport,
  requireRoot,
} from './livepatch.js';
import { followOptions, reverseAndRefuse } from './reversal.js';
import { type HostRoots, resolveRoots } from './roots.js';
import { storePatch } from './store.js';
import type { PatchedSymbols, StalledTask } from './tasks.js';
import { followTransition } from './transition.js';
import { unloadModule } from './unload.js';
import { verifyModule } from './verify.js';

export interface ApplyOptions {
  /** path to the livepatch .ko */
  module: string;
  /** the manifest `suture build` wrote; without it only vermagic is checked (build id unverified) */
  manifest?: Manifest;
  /** how long to wait for the transition before reporting stalled tasks (default 60 s) */
  timeoutMs?: number;
  /** at the timeout, SIGSTOP+SIGCONT the pending user tasks and wait one more timeout */
  signal?: boolean;
  /** at the timeout, force the transition (needs forceConfirmed: the risk is in FORCE_RISK) */
  force?: boolean;
  forceConfirmed?: boolean;
  onEvent?: EventSink;
  roots?: Partial<HostRoots>;
  /** after success, keep module + manifest in the host store so the boot service re-applies it */
  persist?: boolean;
  /** how long the kernel log is watched after the transition for an oops/WARN (guard.ts; default 200 ms) */
  settleMs?: number;
  /** test knobs: poll period, task scan period, the kernel's signalling period */
  pollMs?: number;
  scanMs?: number;
  signalPeriodMs?: number;
}

export interface ApplyResult {
  patch: string;
  file: string;
  release: string;
  buildId: string | undefined;
  /** what was verified before loading, in words */
  verified: string[];
  loadMs: number;
  /** from insmod to transition complete */
  transitionMs: number;
  forced: boolean;
  rounds: SignalRound[];
  /** tasks pending at the timeout, when it was reached (then completed by --signal or --force) */
  stalled: StalledTask[];
  signalled: number[];
  /** patches that this cumulative (replace) patch took over */
  replaced: string[];
}

/** The functions a patch replaces, from its sysfs tree, for marking stack frames. */
export function patchedSymbols(roots: HostRoots, patch: string): PatchedSymbols {
  const p = readLivepatch(roots, patch);
  return {
    patchModule: patch,
    funcs: (p?.objects ?? []).flatMap((o) => o.funcs.map((f) => ({ name: f.name, object: o.name }))),
  };
}

/** --force skips the consistency model for the pending tasks: only with the explicit confirmation. */
function requireForceConfirmed(opts: ApplyOptions): void {
  if (opts.force && !opts.forceConfirmed) {
    throw new SutureError({
      code: 'HOST-FORCE-UNCONFIRMED',
      message: 'forcing a transition needs an explicit confirmation',
      why: 'force skips the consistency model for the tasks still pending',
      hint: 'add --i-understand-the-risk to --force if you accept that',
    });
  }
}

/** verifyModule, told as events (and a note when there is no manifest to check the build id against). */
async function checkModule(roots: HostRoots, file: string, manifest: Manifest | undefined, emit: EventSink) {
  const checked = await verifyModule(roots, file, manifest);
  const { patch, release, buildId, verified } = checked;
  emit({ type: 'checked', module: file, patch, release, buildId, verified });
  if (!manifest)
    emit({
      type: 'note',
      text: 'no manifest: the vmlinux build id was not verified, only the vermagic release',
    });
  return checked;
}

/**
 * The kernel must be free to take this patch: not loaded already, no other transition running.
 * Returns the patches active before, to tell which ones a cumulative patch replaced.
 */
function requireFreeToLoad(roots: HostRoots, patch: string, file: string): string[] {
  const before = readLivepatches(roots);
  const existing = before.find((p) => p.name === patch);
  if (existing || isModuleLoaded(roots, patch)) {
    throw new SutureError({
      code: 'HOST-ALREADY-LOADED',
      message: `module ${patch} is already loaded (${existing?.state ?? 'not a livepatch in sysfs'})`,
      location: { file },
      why: 'the kernel loads a module name once; a new version needs a new name or a cumulative replacement',
      hint:
        existing?.state === 'inactive'
          ? `remove the inactive module first: suture revert ${patch}`
          : 'nothing to do, or build the new version as a cumulative patch with another name',
    });
  }
  const busy = before.find((p) => p.transition);
  if (busy) {
    throw new SutureError({
      code: 'HOST-TRANSITION-BUSY',
      message: `${busy.name} is still in a ${busy.state} transition`,
      why: 'the kernel runs one livepatch transition at a time and would refuse the new patch (EBUSY)',
      hint: `wait for it (suture status), or finish it: suture revert ${busy.name}`,
    });
  }
  return before.filter((p) => p.state === 'active').map((p) => p.name);
}

/** insmod, with the kernel's words; a refused load is HOST-LOAD-FAILED and leaves nothing loaded. */
async function insertModule(
  roots: HostRoots,
  file: string,
  patch: string,
  log: KernelLogCursor,
  emit: EventSink,
) {
  emit({ type: 'loading', file, patch });
  const startedAt = Date.now();
  const loaded = await roots.loader.insmod(file);
  const loadMs = Date.now() - startedAt;
  const kernelSaid = log.since().map((r) => r.text);
  for (const text of kernelSaid) emit({ type: 'kernel-log', text });
  if (!loaded.ok) {
    if (isModuleLoaded(roots, patch)) await unloadModule(roots, patch);
    const said = kernelSaid.filter((t) => !/^\s*$/.test(t));
    throw new SutureError({
      code: 'HOST-LOAD-FAILED',
      message: `the kernel refused ${patch}: ${said.at(-1) ?? loaded.output ?? `insmod exit ${loaded.status}`}`,
      location: { file },
      detail: [
        `insmod: ${loaded.output || `exit status ${loaded.status}`}`,
        ...said.map((t) => `kernel: ${t}`),
      ],
      why: 'init_module failed; nothing was patched',
      hint: said.some((t) => /symbol|sympos|not found/i.test(t))
        ? 'the patch references a symbol this kernel does not have: rebuild it against the running kernel'
        : 'read the kernel message above; `dmesg | tail` has the full context',
    });
  }
  emit({ type: 'loaded', patch, ms: loadMs });
  return { startedAt, loadMs, kernelSaid };
}

/** The loaded module must have registered a patch in sysfs (its init called klp_enable_patch()). */
async function requireRegistered(roots: HostRoots, patch: string, kernelSaid: string[]): Promise<void> {
  if (readLivepatch(roots, patch)) return;
  await unloadModule(roots, patch);
  throw new SutureError({
    code: 'HOST-NOT-REGISTERED',
    message: `${patch} loaded but did not appear in /sys/kernel/livepatch`,
    detail: kernelSaid.map((t) => `kernel: ${t}`),
    why: 'its init did not call klp_enable_patch(); the module was removed again',
    hint: 'build the patch with `suture build`',
  });
}

/** After success: which active patches this one replaced, in the journal, and (with persist) the store. */
function recordApplied(
  roots: HostRoots,
  opts: ApplyOptions,
  patch: string,
  activeBefore: string[],
  forced: boolean,
  emit: EventSink,
): string[] {
  const after = new Set(
    readLivepatches(roots)
      .filter((p) => p.state !== 'inactive')
      .map((p) => p.name),
  );
  const replaced = activeBefore.filter((n) => !after.has(n));
  if (replaced.length) emit({ type: 'replaced', patch, replaced });
  record(roots, { action: 'apply', patch, version: opts.manifest?.version, forced, replaced });
  if (opts.persist) {
    if (!opts.manifest)
      emit({
        type: 'note',
        text: 'not stored for boot: a patch is only re-applied at boot with its manifest',
      });
    else
      emit({ type: 'note', text: `stored for boot in ${storePatch(roots, opts.module, opts.manifest).dir}` });
  }
  return replaced;
}

/**
 * Apply a livepatch: check it belongs here, load it under the crash-loop guard (guard.ts), follow the
 * transition (signal or force at the timeout if asked), and on failure reverse and unload so the
 * machine is as it was.
 */
export async function applyLivepatch(opts: ApplyOptions): Promise<ApplyResult> {
  const roots = resolveRoots(opts.roots);
  const emit: EventSink = opts.onEvent ?? (() => {});
  requireForceConfirmed(opts);
  requireRoot(roots, 'applying a livepatch');
  requireLivepatchSupport(roots);
  const file = opts.module;
  const { patch, release, buildId, verified } = await checkModule(roots, file, opts.manifest, emit);
  const activeBefore = requireFreeToLoad(roots, patch, file);
  return guardedLoad(roots, patch, opts.settleMs ?? DEFAULT_SETTLE_MS, () =>
    loadAndFollow(roots, opts, { patch, file, release, buildId, verified, activeBefore }),
  );
}

/** The load itself, once the module is verified and the kernel free: insmod, transition, record. */
async function loadAndFollow(
  roots: HostRoots,
  opts: ApplyOptions,
  c: {
    patch: string;
    file: string;
    release: string;
    buildId: string | undefined;
    verified: string[];
    activeBefore: string[];
  },
): Promise<ApplyResult> {
  const { patch, file, release, buildId, verified, activeBefore } = c;
  const emit: EventSink = opts.onEvent ?? (() => {});
  const log = KernelLogCursor.open(roots);
  try {
    const { startedAt, loadMs, kernelSaid } = await insertModule(roots, file, patch, log, emit);
    await requireRegistered(roots, patch, kernelSaid);
    const follow = followOptions(opts, patch, log, patchedSymbols(roots, patch));
    const outcome = await followTransition(roots, follow(1, startedAt, true));
    if (!outcome.completed) await reverseAndRefuse(roots, patch, 'patching', outcome, follow, emit);
    const replaced = recordApplied(roots, opts, patch, activeBefore, outcome.forced, emit);
    const { forced, rounds, stalled, signalled } = outcome;
    const transitionMs = outcome.elapsedMs;
    return {
      patch,
      file,
      release,
      buildId,
      verified,
      loadMs,
      transitionMs,
      forced,
      rounds,
      stalled,
      signalled,
      replaced,
    };
  } finally {
    log.close();
  }
}

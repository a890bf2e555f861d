/*
 * Applying a livepatch: verify, load, follow the transition, and undo everything if it fails.
 *
 * Nothing touches the kernel until the module has proved it belongs here: it must be a livepatch
 * (`livepatch=Y` in .modinfo), its vermagic release must be the running release, and when a manifest
 * is given, the manifest's release and vmlinux build id must match the running kernel (build id from
 * /sys/kernel/notes) and its sha256 must match the file. Only then is the module inserted; the kernel
 * starts the patching transition from the module's init (klp_enable_patch). When loading fails, the
 * kernel's own words are collected from its log. When the transition does not complete in time (and
 * neither --signal nor --force finish it), the transition is reversed and the module removed, so a
 * failed apply leaves the machine as it was.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SutureError } from '../diagnostic.js';
import type { Manifest } from '../manifest/manifest.js';
import type { EventSink, SignalRound } from './events.js';
import { runningKernel } from './identity.js';
import { record } from './journal.js';
import { KernelLogCursor } from './kmsg.js';
import {
  isModuleLoaded,
  readLivepatch,
  readLivepatches,
  requireLivepatchSupport,
  requireRoot,
} from './livepatch.js';
import { readModinfo } from './modinfo.js';
import { type HostRoots, resolveRoots } from './roots.js';
import { storePatch } from './store.js';
import type { PatchedSymbols, StalledTask } from './tasks.js';
import { followTransition, writeAttribute } from './transition.js';
import { unloadModule } from './unload.js';

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

function refuse(code: string, message: string, why: string, hint: string, file: string): never {
  throw new SutureError({ code, message, location: { file }, why, hint });
}

/** Everything checked before the kernel is touched; returns the module name and what was verified. */
export function verifyModule(
  roots: HostRoots,
  file: string,
  manifest: Manifest | undefined,
): { patch: string; release: string; buildId: string | undefined; verified: string[] } {
  const info = readModinfo(file);
  if (!info.livepatch) {
    refuse(
      'HOST-NOT-LIVEPATCH',
      `${info.name} is not a livepatch module (no livepatch=Y in .modinfo)`,
      'the kernel only runs klp_enable_patch() safely from modules marked as livepatches; an ordinary module would be loaded with full privileges and patch nothing',
      'pass the livepatch-NAME.ko produced by `suture build` (MODULE_INFO(livepatch, "Y"))',
      file,
    );
  }
  const kernel = runningKernel(roots);
  const verified = ['livepatch=Y in .modinfo'];
  if (info.release !== undefined) {
    if (info.release !== kernel.release) {
      refuse(
        'HOST-KERNEL-MISMATCH',
        `${info.name} was built for ${info.release}, this machine runs ${kernel.release}`,
        `the module's vermagic is "${info.vermagic?.trim()}"; loading it into another kernel would patch code it was not built against`,
        `build the patch for ${kernel.release} (suture build --kernel ${kernel.release})`,
        file,
      );
    }
    verified.push(`vermagic release ${info.release}`);
  }
  if (manifest) {
    if (manifest.kernel.release !== kernel.release) {
      refuse(
        'HOST-KERNEL-MISMATCH',
        `manifest targets ${manifest.kernel.release}, this machine runs ${kernel.release}`,
        'a livepatch is only ever loaded onto the kernel it was built for',
        `use the patch built for ${kernel.release}`,
        file,
      );
    }
    if (kernel.buildId === undefined) {
      refuse(
        'HOST-NO-BUILD-ID',
        'the running kernel exposes no GNU build id in /sys/kernel/notes',
        `the manifest requires vmlinux build id ${manifest.kernel.buildId} and it cannot be verified`,
        'check that sysfs is mounted; without a build id Suture will not load a manifest-checked patch',
        file,
      );
    }
    if (manifest.kernel.buildId !== kernel.buildId) {
      refuse(
        'HOST-BUILD-ID-MISMATCH',
        `manifest targets vmlinux build id ${manifest.kernel.buildId}, the running kernel's is ${kernel.buildId}`,
        `same release (${kernel.release}) but a different build: the patch's offsets and symbol positions would not match`,
        'rebuild the patch against this exact kernel build (its -dbg vmlinux)',
        file,
      );
    }
    verified.push(`vmlinux build id ${kernel.buildId}`);
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    if (sha !== manifest.module.sha256) {
      refuse(
        'HOST-MODULE-SHA256',
        `${file} has sha256 ${sha}, the manifest says ${manifest.module.sha256}`,
        'the module is not the one the manifest describes (corrupted, or a different build)',
        'use the module that was shipped with this manifest',
        file,
      );
    }
    verified.push('module sha256');
    if (manifest.module.name !== info.name) {
      refuse(
        'HOST-MODULE-NAME',
        `module is named ${info.name}, the manifest says ${manifest.module.name}`,
        'the manifest describes another module',
        'use the module that was shipped with this manifest',
        file,
      );
    }
  }
  return { patch: info.name, release: kernel.release, buildId: kernel.buildId, verified };
}

/** The functions a patch replaces, from its sysfs tree, for marking stack frames. */
export function patchedSymbols(roots: HostRoots, patch: string): PatchedSymbols {
  const p = readLivepatch(roots, patch);
  return {
    patchModule: patch,
    funcs: (p?.objects ?? []).flatMap((o) => o.funcs.map((f) => ({ name: f.name, object: o.name }))),
  };
}

export async function applyLivepatch(opts: ApplyOptions): Promise<ApplyResult> {
  const roots = resolveRoots(opts.roots);
  const emit: EventSink = opts.onEvent ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (opts.force && !opts.forceConfirmed) {
    throw new SutureError({
      code: 'HOST-FORCE-UNCONFIRMED',
      message: 'forcing a transition needs an explicit confirmation',
      why: 'force skips the consistency model for the tasks still pending',
      hint: 'add --i-understand-the-risk to --force if you accept that',
    });
  }
  requireRoot(roots, 'applying a livepatch');
  requireLivepatchSupport(roots);
  const file = opts.module;
  const { patch, release, buildId, verified } = verifyModule(roots, file, opts.manifest);
  emit({ type: 'checked', module: file, patch, release, buildId, verified });
  if (!opts.manifest)
    emit({
      type: 'note',
      text: 'no manifest: the vmlinux build id was not verified, only the vermagic release',
    });

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
  const activeBefore = before.filter((p) => p.state === 'active').map((p) => p.name);

  const log = KernelLogCursor.open(roots);
  try {
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
    const state = readLivepatch(roots, patch);
    if (!state) {
      await unloadModule(roots, patch);
      throw new SutureError({
        code: 'HOST-NOT-REGISTERED',
        message: `${patch} loaded but did not appear in /sys/kernel/livepatch`,
        detail: kernelSaid.map((t) => `kernel: ${t}`),
        why: 'its init did not call klp_enable_patch(); the module was removed again',
        hint: 'build the patch with `suture build`',
      });
    }
    const marks = patchedSymbols(roots, patch);
    const outcome = await followTransition(roots, {
      patch,
      target: 1,
      startedAt,
      timeoutMs,
      signal: opts.signal ?? false,
      force: opts.force ?? false,
      log,
      onEvent: emit,
      marks,
      pollMs: opts.pollMs,
      scanMs: opts.scanMs,
      signalPeriodMs: opts.signalPeriodMs,
    });
    if (!outcome.completed) {
      const reason =
        outcome.interrupted ?? `transition not complete after ${Math.round(outcome.elapsedMs / 1000)} s`;
      emit({ type: 'reversing', patch, reason });
      const still = readLivepatch(roots, patch);
      if (still?.transition && still.enabled) writeAttribute(roots, patch, 'enabled', '0');
      const back = await followTransition(roots, {
        patch,
        target: 0,
        startedAt: Date.now(),
        timeoutMs,
        signal: false,
        force: false,
        log,
        onEvent: emit,
        marks,
        pollMs: opts.pollMs,
        scanMs: opts.scanMs,
        signalPeriodMs: opts.signalPeriodMs,
      });
      const detail = outcome.stalled.flatMap(formatStalledTask);
      if (!back.completed) {
        throw new SutureError({
          code: 'HOST-REVERSE-STALLED',
          message: `${patch} did not complete, and reversing it has not completed either`,
          detail,
          why: 'the tasks above hold the patched functions; the kernel keeps retrying the reversal by itself',
          hint: `watch \`suture status\`; once the reversal completes, \`suture revert ${patch}\` unloads the module`,
        });
      }
      await unloadModule(roots, patch);
      emit({ type: 'unloaded', module: patch });
      throw new SutureError({
        code: 'HOST-TRANSITION-TIMEOUT',
        message: `${patch}: ${reason}; reversed and unloaded, the machine is as it was`,
        detail,
        why: 'these tasks sleep inside functions the patch replaces, so the kernel cannot switch them safely',
        hint: 'retry later, with a longer --timeout, with --signal (user tasks), or with --force --i-understand-the-risk',
      });
    }
    const after = new Set(
      readLivepatches(roots)
        .filter((p) => p.state !== 'inactive')
        .map((p) => p.name),
    );
    const replaced = activeBefore.filter((n) => !after.has(n));
    if (replaced.length) emit({ type: 'replaced', patch, replaced });
    record(roots, {
      action: 'apply',
      patch,
      version: opts.manifest?.version,
      forced: outcome.forced,
      replaced,
    });
    if (opts.persist) {
      if (!opts.manifest)
        emit({
          type: 'note',
          text: 'not stored for boot: a patch is only re-applied at boot with its manifest',
        });
      else emit({ type: 'note', text: `stored for boot in ${storePatch(roots, file, opts.manifest).dir}` });
    }
    return {
      patch,
      file,
      release,
      buildId,
      verified,
      loadMs,
      transitionMs: outcome.elapsedMs,
      forced: outcome.forced,
      rounds: outcome.rounds,
      stalled: outcome.stalled,
      signalled: outcome.signalled,
      replaced,
    };
  } finally {
    log.close();
  }
}

/** A pending task as report lines: header, then its kernel stack with patched frames marked. */
export function formatStalledTask(t: StalledTask): string[] {
  const head = `${t.kthread ? 'kthread' : 'task'} ${t.comm} pid ${t.pid}${t.tid !== t.pid ? ` tid ${t.tid}` : ''} state ${t.state}${t.onStack.length ? ` — sleeping in ${t.onStack.join(', ')}` : ''}`;
  const frames = t.stack.length
    ? t.stack.map((f) => `  ${f.patched ? '>>' : '  '} ${f.raw.trim()}`)
    : ['     (no kernel stack readable)'];
  return [head, ...frames];
}

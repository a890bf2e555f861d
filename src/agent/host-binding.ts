/*
 * The agent's kernel port bound to the host layer (src/host/): the real kernel on this machine.
 *
 * The agent never reads sysfs itself; this file only translates. The host layer verifies the module
 * once more (livepatch flag, vermagic, manifest release/build id/sha256) before init_module, follows
 * the transition, and on a timeout reverses it and unloads the module (the machine is as before); the
 * `stalled` event it emits carries the tasks holding the transition back, which the agent reports.
 * `roots` points the host layer at other sysfs/procfs trees (tests).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError, toDiagnostic } from '../diagnostic.js';
import {
  applyLivepatch,
  badMarkOf,
  badPatches,
  type HostRoots,
  type StalledTask as HostStalledTask,
  listLivepatches,
  readMode,
  removeStored,
  resolveRoots,
  revertLivepatch,
  runningKernel,
  type TransitionEvent,
} from '../host/index.js';
import type { BadReason, KernelOpResult, KernelPort, StalledTask } from './kernel-port.js';

function toStalled(t: HostStalledTask): StalledTask {
  return {
    pid: t.pid,
    comm: t.comm,
    stack: t.stack.map((f) => `${f.patched ? '>> ' : ''}${f.raw.trim()}`),
  };
}

function failure(
  e: unknown,
  stall: { elapsedMs: number; tasks: HostStalledTask[] } | undefined,
  bad?: { reason: BadReason; kernelLog: string },
): KernelOpResult {
  const d = toDiagnostic(e);
  const reason = [d.message, ...(d.detail ?? []).slice(0, 12)].join('\n');
  return {
    ok: false,
    code: d.code,
    reason,
    ...(stall ? { stall: { seconds: stall.elapsedMs / 1000, tasks: stall.tasks.map(toStalled) } } : {}),
    rolledBack: d.code !== 'HOST-REVERSE-STALLED' && d.code !== 'HOST-PATCH-BAD',
    ...(bad ? { bad } : {}),
  };
}

export function hostKernel(partial?: Partial<HostRoots>): KernelPort {
  const roots = resolveRoots(partial);
  return {
    async runningKernel() {
      const k = runningKernel(roots);
      if (!k.buildId) {
        throw new SutureError({
          code: 'AGENT-NO-BUILD-ID',
          message: `the running kernel ${k.release} exposes no GNU build id in ${join(roots.sys, 'kernel/notes')}`,
          why: 'without the build id no patch can be matched to this exact kernel, so none is ever loaded',
          hint: 'mount sysfs at /sys; Debian kernels expose their build id there',
        });
      }
      return {
        release: k.release,
        buildId: k.buildId,
        livepatchSupported: existsSync(join(roots.sys, 'kernel/livepatch')),
      };
    },
    async listLivepatches() {
      return listLivepatches(roots).map((p) => ({
        name: p.name,
        enabled: p.enabled,
        transition: p.transition,
      }));
    },
    async apply({ module, manifest, timeoutMs }) {
      let stall: { elapsedMs: number; tasks: HostStalledTask[] } | undefined;
      const onEvent = (e: TransitionEvent) => {
        if (e.type === 'stalled') stall = { elapsedMs: e.elapsedMs, tasks: e.tasks };
      };
      try {
        const r = await applyLivepatch({ module, manifest, timeoutMs, onEvent, roots, persist: true });
        return { ok: true, seconds: r.transitionMs / 1000 };
      } catch (e) {
        const mark =
          toDiagnostic(e).code === 'HOST-PATCH-BAD' ? badMarkOf(roots, manifest.module.name) : undefined;
        return failure(e, stall, mark && { reason: mark.reason, kernelLog: mark.kernelLog });
      }
    },
    async mode() {
      const m = readMode(roots);
      const source =
        m.source === 'cmdline' ? 'kernel command line' : m.source === 'file' ? (m.path ?? 'file') : 'default';
      return { mode: m.mode, source, ...(m.warning ? { warning: m.warning } : {}) };
    },
    async badPatches() {
      return badPatches(roots).map((b) => ({
        moduleName: b.patch,
        reason: b.reason,
        kernelLog: b.kernelLog,
      }));
    },
    async forgetStored({ moduleName, sha256 }) {
      removeStored(roots, moduleName, sha256);
    },
    async revert({ moduleName, timeoutMs }) {
      let stall: { elapsedMs: number; tasks: HostStalledTask[] } | undefined;
      const onEvent = (e: TransitionEvent) => {
        if (e.type === 'stalled') stall = { elapsedMs: e.elapsedMs, tasks: e.tasks };
      };
      try {
        const r = await revertLivepatch(moduleName, { timeoutMs, onEvent, roots });
        return { ok: true, seconds: r.transitionMs / 1000 };
      } catch (e) {
        return failure(e, stall);
      }
    },
  };
}

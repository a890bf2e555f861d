/*
 * The kernel as the agent sees it: the few host-layer operations the agent needs, as one interface.
 *
 * The agent never touches sysfs, procfs or init_module itself: `src/host/` owns the kernel's livepatch
 * interface. This port names exactly what the agent relies on — the running kernel's identity, the
 * livepatches the kernel has loaded right now (the truth the agent reconciles its journal against),
 * apply and revert — so the daemon can be driven by the real host layer on a machine and by an
 * in-memory kernel in unit tests. `host-binding.ts` binds it to `src/host/`.
 */
import type { Manifest } from '../manifest/manifest.js';

/** The same kernel build (release and build id): what a patch is for against what a machine runs. */
export function sameKernel(
  a: { release: string; buildId: string },
  b: { release: string; buildId: string },
): boolean {
  return a.release === b.release && a.buildId === b.buildId;
}

export interface RunningKernel {
  release: string;
  /** GNU build id of the running vmlinux, 40 lowercase hex digits */
  buildId: string;
  /** false when the kernel has no livepatch support (CONFIG_LIVEPATCH off: no /sys/kernel/livepatch) */
  livepatchSupported: boolean;
}

/** A livepatch the kernel has loaded (one directory under /sys/kernel/livepatch). */
export interface LoadedLivepatch {
  /** sysfs directory name = module name, e.g. `livepatch_cmdline` */
  name: string;
  enabled: boolean;
  /** a transition (patching or unpatching) is still in progress */
  transition: boolean;
}

/** A task holding a transition back. */
export interface StalledTask {
  pid: number;
  comm: string;
  stack: string[];
}

export type KernelOpResult =
  | { ok: true; seconds: number }
  | {
      ok: false;
      /** SutureError code from the host layer (e.g. `HOST-TRANSITION-STALLED`, `HOST-LOAD-FAILED`) */
      code: string;
      reason: string;
      /** set when the transition did not complete in time */
      stall?: { seconds: number; tasks: StalledTask[] };
      /** true when the kernel is still in the state it was before (the host layer rolled back) */
      rolledBack: boolean;
      /** set when the host's crash-loop guard marked the patch bad (code HOST-PATCH-BAD) */
      bad?: { reason: BadReason; kernelLog: string };
    };

/** Why the host's crash-loop guard marked a patch bad (host/guard.ts). */
export type BadReason = 'oops' | 'warn' | 'panic' | 'no-return';

/** The kill switch as the host reads it (host/mode.ts). */
export interface ModeReading {
  mode: 'normal' | 'no-apply' | 'no-refresh' | 'stop';
  /** where it came from, in words (`kernel command line`, the file, `default`) */
  source: string;
  warning?: string;
}

/** A patch the host's crash-loop guard marked bad (host/guard.ts), by module name. */
export interface BadLivepatch {
  moduleName: string;
  reason: BadReason;
  kernelLog: string;
}

export interface KernelPort {
  runningKernel(): Promise<RunningKernel>;
  listLivepatches(): Promise<LoadedLivepatch[]>;
  /** load and enable a verified module; wait at most timeoutMs for the transition */
  apply(args: { module: string; manifest: Manifest; timeoutMs: number }): Promise<KernelOpResult>;
  /** disable and unload the livepatch `moduleName` */
  revert(args: { moduleName: string; timeoutMs: number }): Promise<KernelOpResult>;
  /** the kill switch; absent means always `normal` (in-memory kernels of tests) */
  mode?(): Promise<ModeReading>;
  /** patches the host will never load again; absent means none */
  badPatches?(): Promise<BadLivepatch[]>;
  /** drop this module from what the boot unit re-applies (host/store.ts); absent means no such store */
  forgetStored?(args: { moduleName: string; sha256: string }): Promise<void>;
}

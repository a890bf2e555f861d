/*
 * What a caller asks of a VM and what it gets back.
 *
 * A VM boots the exact target kernel (its vmlinuz) under QEMU TCG with an initramfs assembled for the
 * request (see initramfs.ts). `runInVm` boots, runs one script and powers off, returning a VmResult;
 * `bootVm` returns a VmSession that runs commands until closed.
 */
import type { KernelTarget } from '../kernel/target.js';
import type { FileSpec } from './initramfs.js';
import type { Layer } from './layer-cache.js';
import type { KernelProblem, ModuleRefusal } from './problems.js';

export interface VmOptions {
  kernel: KernelTarget;
  /** modules of the image to load at boot, by name (`virtio_net`); their dependencies are added */
  modules?: string[];
  /** modules to place under /lib/modules/<release> without loading them (the guest may `modprobe`) */
  placeModules?: string[];
  /** host files or directories to copy in; `to` defaults to `/<basename>` */
  files?: FileSpec[];
  /** make `suture` (and `node`) work inside the VM */
  withSuture?: boolean;
  /**
   * V8 flags for `node` in the VM (a /usr/local/bin/node wrapper, first on PATH; /usr/bin/node stays
   * plain), e.g. VM_NODE_FLAGS (no optimising compilers: helps on an overloaded host). Default none.
   */
  nodeFlags?: string[];
  /** QEMU user networking: the guest gets 10.0.2.15 by DHCP and reaches the host's loopback at 10.0.2.2 */
  net?: boolean;
  /**
   * boot the Debian guest on this qcow2 disk (guest/image.ts) instead of the busybox harness: the
   * initramfs only mounts it and hands over to its systemd; `withSuture` and `files` do not apply
   */
  disk?: string;
  /** with `disk`: a raw ext4 image of files, attached read-only as /dev/vdb (guest/media.ts) */
  media?: string;
  /** guest memory; default 512, or 1024 with withSuture */
  memoryMb?: number;
  /** extra kernel command line */
  append?: string;
  /**
   * hard limit for the whole VM (boot + everything run in it): QEMU is killed when it expires and the
   * result says so. Default 300 s for runInVm, 600 s for a session.
   */
  timeoutMs?: number;
  /** limit for the boot alone (until the guest serves commands); default min(timeoutMs, 180 s) */
  bootTimeoutMs?: number;
  /** every console (ttyS0) chunk as it arrives */
  onConsole?: (chunk: string) => void;
}

export type VmOutcome =
  /** the script exited 0 and the kernel reported no problem */
  | 'ok'
  /** the script exited non-zero */
  | 'script-failed'
  /** the hard timeout expired (QEMU was killed) or the script was killed by its time limit */
  | 'timeout'
  /** an oops or BUG: the kernel survived but is tainted */
  | 'oops'
  /** a kernel panic: the VM died */
  | 'panic'
  /** a WARNING: splat */
  | 'warning'
  /** the VM never came up to run the script (QEMU failed, the kernel died, a boot module failed) */
  | 'boot-failed';

export interface VmResult {
  outcome: VmOutcome;
  /** one line for a person: what happened and why */
  message: string;
  /** exit status of the script, null when it did not finish */
  exitCode: number | null;
  /** what the script wrote to stdout and stderr (never kernel messages) */
  output: string;
  /** the kernel log: `dmesg` at the end, or the console's kernel lines when the VM died first */
  kernelLog: string;
  /** everything the console printed */
  console: string;
  /** time from starting QEMU until the guest served commands */
  bootMs: number;
  /** time the script ran */
  runMs: number;
  problems: KernelProblem[];
  /** modules the kernel refused to load, with its reason */
  moduleRefusals: ModuleRefusal[];
  initramfs: { bytes: number; layers: Layer[] };
}

export interface ExecOptions {
  /** kill the command in the guest after this long (default 120 s) */
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr of the command, interleaved as written */
  output: string;
  /** the command was killed by its time limit */
  timedOut: boolean;
  durationMs: number;
  /** kernel problems that appeared on the console while the command ran */
  problems: KernelProblem[];
  /** console text printed while the command ran (kernel messages) */
  console: string;
}

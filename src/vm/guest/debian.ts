/*
 * A Debian guest for a test: its own disk (a qcow2 overlay of the cached base image, image.ts) that
 * survives reboots, booted with the target kernel under TCG, commands over the usual channel
 * (channel.ts serves it in the guest).
 *
 * A reboot is the guest's own `systemctl reboot`: QEMU runs with `-no-reboot`, so it exits when the
 * guest resets, and the next `boot()` starts a new QEMU on the same disk (and a new nonce, so no
 * output of the previous boot can be mistaken for this one's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fail } from '../../diagnostic.js';
import type { KernelTarget } from '../../kernel/target.js';
import type { VmOptions } from '../options.js';
import { bootVm, type VmSession } from '../session.js';
import { createOverlay, ensureGuestImage } from './image.js';
import { makeMedia } from './media.js';
import { type GuestSuite, guestRootSpec } from './root.js';

export interface DebianGuestOptions {
  kernel: KernelTarget;
  /** the Debian release of the root: bookworm (12, the default) or trixie (13) */
  suite?: GuestSuite;
  /** host files the guest finds on /dev/vdb (mount it with MOUNT_MEDIA) */
  media?: readonly string[];
  onLine?: (l: string) => void;
}

/**
 * `kernel`: boot the same disk with another kernel than the guest's (a kernel change on the host);
 * `modules`: what that kernel needs before its disk is mounted (e.g. ext4 where it is a module), and
 * drivers the disk has no modules for (the image holds the guest kernel's modules only)
 */
export interface BootOptions
  extends Pick<VmOptions, 'net' | 'append' | 'onConsole' | 'timeoutMs' | 'memoryMb' | 'modules'>,
    Partial<Pick<VmOptions, 'kernel'>> {}

export class DebianGuest {
  /** ms spent making the base image now (0 when it was cached) */
  imageMs = 0;
  private constructor(
    readonly kernel: KernelTarget,
    readonly dir: string,
    readonly disk: string,
    readonly media: string | undefined,
  ) {}

  static async create(o: DebianGuestOptions): Promise<DebianGuest> {
    const spec = guestRootSpec(o.suite ?? 'bookworm');
    const base = await ensureGuestImage(o.kernel, { spec, ...(o.onLine ? { onLine: o.onLine } : {}) });
    const dir = mkdtempSync(join(tmpdir(), 'suture-guest-'));
    const media = o.media?.length ? makeMedia(o.media, dir) : undefined;
    const g = new DebianGuest(o.kernel, dir, createOverlay(base.path, dir), media);
    g.imageMs = base.builtMs;
    return g;
  }

  /** Boot the disk; resolves when the guest's command channel is up. */
  boot(o: BootOptions = {}): Promise<VmSession> {
    return bootVm({
      kernel: this.kernel,
      disk: this.disk,
      ...(this.media ? { media: this.media } : {}),
      memoryMb: 1024,
      timeoutMs: 900_000,
      bootTimeoutMs: 300_000,
      ...o,
    });
  }

  /** `systemctl reboot` in the guest and wait until its QEMU has gone; returns ms until then. */
  async shutdown(vm: VmSession, how: 'reboot' | 'poweroff' = 'reboot'): Promise<number> {
    const t0 = performance.now();
    await vm.exec(`(sleep 0.5; systemctl ${how}) >/dev/null 2>&1 &`, { timeoutMs: 30_000 });
    const timer = setTimeout(() => void vm.close(), 180_000);
    const end = await vm.exited;
    clearTimeout(timer);
    if (end.kind !== 'exited')
      fail('VM-GUEST-REBOOT', `the guest did not ${how} (${end.kind})`, {
        detail: vm.console.split('\n').slice(-20),
      });
    return performance.now() - t0;
  }

  /** Remove the overlay and media (the cached base stays). */
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

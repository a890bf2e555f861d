/*
 * guest: reboot-to-patched in a Debian 12 guest (systemd, src/vm/guest/) against the same guest's boot
 * without Suture.
 *
 * One guest disk: booted first without Suture (baseline: systemd's own timestamp of multi-user.target,
 * µs since the kernel started), then Suture installed from the release tarball, the blog's meminfo
 * patch built by `suture build`, applied with `suture apply --persist` and the boot unit installed;
 * rebooted N times, each time reading when suture-livepatch.service became active (the patch live
 * again) and multi-user.target. The ratio is patched-after-reboot over the plain boot: below 1 means the
 * patch is back before the machine would have been up without Suture.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { buildTarball } from '../package/tarball.js';
import { DebianGuest } from '../vm/guest/debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from '../vm/guest/media.js';
import type { VmSession } from '../vm/session.js';
import { type Benchmark, median } from './harness.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');

async function sh(vm: VmSession, cmd: string): Promise<string> {
  const r = await vm.exec(cmd, { timeoutMs: 300_000 });
  if (r.exitCode !== 0) throw new Error(`${cmd} exited ${r.exitCode} in the guest: ${r.output}`);
  return r.output.trim();
}

/** µs after the kernel started when `unit` became active in this boot (waits for the boot to finish). */
async function activeAt(vm: VmSession, unit: string): Promise<number> {
  await sh(vm, 'systemctl is-system-running --wait >/dev/null || true');
  return Number(await sh(vm, `systemctl show -P ActiveEnterTimestampMonotonic ${unit}`));
}

export const benchmarks: Benchmark[] = [
  {
    name: 'reboot to patched (Debian 12 guest, TCG)',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const work = mkdtempSync(join(tmpdir(), 'suture-guest-bench-'));
      const out = join(work, 'meminfo');
      const cli = spawnSync(
        process.execPath,
        ['bin/suture.js', 'build', MEMINFO, '--kernel', kernel.release, '--name', 'meminfo', '-o', out],
        { encoding: 'utf8' },
      );
      if (cli.status !== 0) throw new Error(`suture build failed: ${cli.stderr}`);
      const tarball = (await buildTarball(join(work, 'release'))).path;
      const guest = await DebianGuest.create({
        kernel,
        media: [tarball, join(out, 'livepatch-meminfo.ko'), join(out, 'livepatch-meminfo.manifest.json')],
      });
      const runs = Math.max(1, Math.min(ctx.runs, 3));
      let vm: VmSession | undefined;
      try {
        const plain: number[] = [];
        for (let i = 0; i < runs; i++) {
          vm = await guest.boot();
          plain.push(await activeAt(vm, 'multi-user.target'));
          if (i === 0) {
            await sh(vm, `${MOUNT_MEDIA} && tar -xzf ${MEDIA_MOUNT}/${tarball.split('/').pop()} -C /`);
            await sh(
              vm,
              `suture apply ${MEDIA_MOUNT}/livepatch-meminfo.ko --manifest ${MEDIA_MOUNT}/livepatch-meminfo.manifest.json --persist >/dev/null`,
            );
            await sh(vm, 'suture host install-service >/dev/null; umount /mnt/media');
            await sh(vm, 'systemctl disable suture-livepatch.service 2>/dev/null');
          }
          await guest.shutdown(vm);
        }
        const patched: number[] = [];
        vm = await guest.boot();
        await sh(vm, 'systemctl enable suture-livepatch.service 2>/dev/null');
        await guest.shutdown(vm);
        for (let i = 0; i < runs; i++) {
          vm = await guest.boot();
          const at = await activeAt(vm, 'suture-livepatch.service');
          if (!(await sh(vm, 'grep -c VMALLOCCHUNK /proc/meminfo || true')).startsWith('1'))
            throw new Error(
              `the patch is not live after the reboot:\n${await sh(vm, 'journalctl -b -u suture-livepatch --no-pager | tail -n 20')}`,
            );
          patched.push(at);
          await guest.shutdown(vm);
        }
        vm = undefined;
        ctx.report({
          name: 'kernel start → patch live again, against → multi-user.target without Suture',
          ours: median(patched) / 1000,
          baseline: { name: 'boot without Suture', value: median(plain) / 1000 },
          unit: 'ms',
          note: `${runs} boots each; systemd's monotonic timestamps in the guest`,
        });
      } finally {
        await vm?.close();
        guest.dispose();
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
];

/*
 * A kernel change under a stored patch, for real: a Debian 12 guest with Suture from the release
 * tarball and both units, enrolled against the real server on the host, gets a livepatch for the
 * default kernel (6.1.0-53-cloud-amd64) through the agent; then the same disk boots another kernel
 * (6.1.0-53-amd64; the few modules it needs come with the harness's initramfs, the disk has none).
 *
 *   the boot unit skips the stored patch (built for the other build id): nothing is loaded;
 *   `suture status` exits 3, verdict kernel-upgrade-required, and names the kernel the patch is for;
 *   the agent records the patch as not loaded; the server, which has no patch for the booted kernel's
 *   flavour (`amd64`), answers `kernelSupport: unsupported`, so the record says `kernel-unsupported:
 *   built for …`, `suture agent status` says `unsupported: …` naming the patch left behind, and the
 *   server's machine view shows that report and the booted kernel.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServerBackend, startFleetBackend } from '../../agent/testing/fleet-backend.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../../kernel/target.js';
import { buildModule } from '../../klp/kbuild.js';
import type { Manifest } from '../../manifest/manifest.js';
import { buildTarball } from '../../package/tarball.js';
import type { VmSession } from '../session.js';
import { markerLivepatch, markerManifest } from '../testing/fixtures.js';
import { DebianGuest } from './debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from './media.js';

const OTHER = '6.1.0-53-amd64';
const MARK = 'suture-kernel-change';
/**
 * What the other kernel needs and the disk does not have (its image holds the default kernel's modules
 * only): ext4 (a module on this flavour, with the crc32c it asks for at mount) and the network driver,
 * loaded by the harness's initramfs before it hands over to the disk's systemd.
 */
const OTHER_MODULES = ['crc32c_generic', 'ext4', 'virtio_net'];

let kernel: KernelTarget;
let other: KernelTarget;
let work: string;
let server: ServerBackend;
let guest: DebianGuest;
let vm: VmSession;
let tarball: string;
let ko: string;
let manifest: Manifest;
let patchId: string;
let machineId: string;

async function run(cmd: string, timeoutMs = 180_000): Promise<{ exitCode: number; output: string }> {
  const r = await vm.exec(cmd, { timeoutMs });
  assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
  return { exitCode: r.exitCode ?? -1, output: r.output.replaceAll('\r', '') };
}

async function sh(cmd: string, timeoutMs = 180_000): Promise<string> {
  const r = await run(cmd, timeoutMs);
  assert.equal(r.exitCode, 0, `${cmd} exited ${r.exitCode}:\n${r.output}`);
  return r.output;
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 240_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) {
      const log = await vm.exec('journalctl -b -u suture-agent --no-pager | tail -n 40', {
        timeoutMs: 30_000,
      });
      assert.fail(`timed out after ${ms} ms waiting until ${what}\nagent journal:\n${log.output}`);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

interface MachineView {
  kernelRelease: string;
  buildId: string;
  patches: { patchId: string; state: string; reason?: string }[];
}
const machine = () => server.admin<MachineView>('GET', `/admin/v1/machines/${machineId}`);

describe('Debian guest: a stored patch after booting another kernel', { timeout: 1_200_000 }, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    other = await ensureKernel(OTHER);
    assert.notEqual(other.buildId, kernel.buildId);
    work = mkdtempSync(join(tmpdir(), 'suture-kernel-change-'));
    const dir = join(work, 'livepatch-kc');
    mkdirSync(dir);
    writeFileSync(join(dir, 'livepatch-kc.c'), markerLivepatch(MARK));
    writeFileSync(join(dir, 'Kbuild'), 'obj-m := livepatch-kc.o\n');
    ko = (await buildModule(dir, kernel)).ko;
    manifest = markerManifest(kernel, ko, 'kc');
    tarball = (await buildTarball(join(work, 'release'))).path;
    server = await startFleetBackend({ host: '127.0.0.1', checkinIntervalSeconds: 2 });
    guest = await DebianGuest.create({ kernel, media: [tarball] });
    vm = await guest.boot({ net: true });
  });

  after(async () => {
    await vm?.close();
    guest?.dispose();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('on the default kernel: installed, enrolled, the agent applies the patch and stores it', async () => {
    await sh(
      [MOUNT_MEDIA, `tar -xzf ${MEDIA_MOUNT}/${basename(tarball)} -C /`, `umount ${MEDIA_MOUNT}`].join(
        ' && ',
      ),
    );
    assert.match(await sh('suture host install-service'), /enabled suture-livepatch\.service/);
    const token = await server.createToken('stable');
    const enrolled = await sh(`suture agent enable ${token} --server http://10.0.2.2:${server.port}`);
    machineId = /enrolled as (m-[0-9a-f]{16})/.exec(enrolled)?.[1] ?? '';
    assert.ok(machineId, enrolled);
    await sh('suture agent install-service');
    patchId = await server.publish(ko, manifest, 'stable');
    await eventually('the patch is live', async () => (await sh('cat /proc/cmdline')).includes(MARK));
    await eventually('the agent stored it for boot', async () =>
      (await sh('ls /var/lib/suture/patches 2>/dev/null || true')).includes('livepatch_kc'),
    );
    await eventually('the server has the report', async () =>
      (await machine()).patches.some((p) => p.patchId === patchId && p.state === 'applied'),
    );
    assert.equal((await run('suture status')).exitCode, 0);
  });

  test('booted with another kernel: nothing loaded, status exits 3, the agent reports it unsupported', async () => {
    await guest.shutdown(vm, 'reboot');
    vm = await guest.boot({ net: true, kernel: other, modules: OTHER_MODULES });
    await sh('systemctl is-system-running --wait || true', 240_000);
    assert.equal((await sh('uname -r')).trim(), OTHER);
    assert.equal((await sh('ls /sys/kernel/livepatch')).trim(), '', 'nothing loaded');
    assert.ok(!(await sh('cat /proc/cmdline')).includes(MARK));
    const journal = await sh('journalctl -b -o cat --no-pager -u suture-livepatch.service');
    const skipped = journal.split('\n').find((l) => l.startsWith('livepatch_kc: skipped'));
    assert.ok(skipped?.includes(`built for ${kernel.release} (${kernel.buildId.slice(0, 12)})`), journal);
    assert.ok(skipped?.includes(`running ${OTHER} (${other.buildId.slice(0, 12)})`), journal);

    const status = await run('suture status');
    assert.equal(status.exitCode, 3, status.output);
    assert.match(
      status.output,
      new RegExp(`^  livepatch_kc 1: stored for ${kernel.release}, not this kernel`, 'm'),
    );
    assert.match(status.output, /^verdict: kernel-upgrade-required \(exit 3\)$/m);

    // first reported as kernel-upgrade-required (the last answer spoke of the other kernel), then in the
    // words of the server's answer for this one
    const why = `kernel-unsupported: built for ${kernel.release} (${kernel.buildId.slice(0, 12)}), this machine booted ${OTHER} (${other.buildId.slice(0, 12)}): not loaded, the server has no patch for this kernel nor its flavour`;
    await eventually('the server has the agent report', async () => {
      const m = await machine();
      return (
        m.kernelRelease === OTHER && m.patches.some((p) => p.patchId === patchId && p.reason?.startsWith(why))
      );
    });
    const view = await machine();
    assert.equal(view.buildId, other.buildId);
    assert.equal(view.patches.find((p) => p.patchId === patchId)?.state, 'reverted');
    const agent = await sh('suture agent status');
    assert.match(
      agent,
      new RegExp(
        `^patch state: unsupported: the server has no patch for ${OTHER} nor any kernel of its flavour; kc 1 \\(${kernel.release}\\) built for another kernel, not loaded$`,
        'm',
      ),
    );
  });
});

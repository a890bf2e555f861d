/*
 * Boot and service, for real: a Debian 12 guest (systemd as PID 1, its own disk across reboots) with
 * Suture installed from the release tarball as the README tells an operator, enrolled against the
 * real server on the host (10.0.2.2 from the guest).
 *
 *   install: tarball → /opt/suture; `suture host install-service`, `suture agent enable`,
 *            `suture agent install-service` — systemd starts the agent
 *   deliver: the blog's meminfo patch (`suture build`) published to the machine's tier; the agent
 *            applies it (VMALLOCCHUNK in /proc/meminfo) and stores it for boot
 *   reboot:  same disk; the boot unit re-applied it before network-pre.target and before the agent
 *            started (systemd's own timestamps and the journal's order), so before any check-in;
 *            a stored copy whose build id is not the booted kernel's is skipped, not loaded
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ServerBackend, startFleetBackend } from '../../agent/testing/fleet-backend.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../../kernel/target.js';
import { manifestSchema } from '../../manifest/manifest.js';
import { buildTarball } from '../../package/tarball.js';
import type { VmSession } from '../session.js';
import { DebianGuest } from './debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from './media.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');

let kernel: KernelTarget;
let work: string;
let server: ServerBackend;
let guest: DebianGuest;
let vm: VmSession;
let tarball: string;
let ko: string;
let manifestPath: string;

async function sh(cmd: string, timeoutMs = 180_000): Promise<string> {
  const r = await vm.exec(cmd, { timeoutMs });
  assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
  assert.equal(r.exitCode, 0, `${cmd} exited ${r.exitCode}:\n${r.output}`);
  return r.output.replaceAll('\r', '');
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

const patched = async () => (await sh('grep -c VMALLOCCHUNK /proc/meminfo || true')).trim() === '1';

/** systemd's monotonic timestamp (µs) of a unit property, 0 when it never happened this boot. */
async function stamp(unit: string, prop: string): Promise<number> {
  const out = await sh(`systemctl show -P ${prop} ${unit}`);
  return Number(out.trim());
}

describe('Debian guest: services, agent delivery, reboot re-applies before the agent', {
  timeout: 1_200_000,
}, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    work = mkdtempSync(join(tmpdir(), 'suture-guest-vm-'));
    const out = join(work, 'meminfo');
    const cli = spawnSync(
      process.execPath,
      ['bin/suture.js', 'build', MEMINFO, '--kernel', kernel.release, '--name', 'meminfo', '-o', out],
      { encoding: 'utf8' },
    );
    assert.equal(cli.status, 0, cli.stderr);
    ko = join(out, 'livepatch-meminfo.ko');
    manifestPath = join(out, 'livepatch-meminfo.manifest.json');
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

  test('installed from the tarball, the units start under systemd', async () => {
    assert.equal((await sh('cat /proc/1/comm')).trim(), 'systemd');
    assert.match(await sh('. /etc/os-release; echo $VERSION_ID'), /^12$/m);
    await sh(
      `${MOUNT_MEDIA} && tar -xzf ${MEDIA_MOUNT}/${tarball.split('/').pop()} -C / && umount ${MEDIA_MOUNT}`,
    );
    assert.equal((await sh('suture --version')).trim(), '0.1.0');
    // nothing from outside Debian but the tarball: the node it runs is its own
    assert.match(await sh('readlink -f /proc/self/exe; /opt/suture/node/bin/node --version'), /^v2\d\./m);
    assert.match(await sh('suture host install-service'), /enabled suture-livepatch\.service/);
    const token = await server.createToken('stable');
    const enrolled = await sh(`suture agent enable ${token} --server http://10.0.2.2:${server.port}`);
    assert.match(enrolled, /enrolled as m-[0-9a-f]{16}/);
    await sh('suture agent install-service');
    await eventually(
      'systemd runs the agent',
      async () => (await sh('systemctl is-active suture-agent.service || true')).trim() === 'active',
    );
    const unit = await sh('systemctl cat suture-livepatch.service');
    assert.match(
      unit,
      /^ExecStart=\/opt\/suture\/node\/bin\/node \/opt\/suture\/bin\/suture\.js host boot-apply/m,
    );
  });

  test('the agent applies the published meminfo patch and stores it for boot', async () => {
    const manifest = manifestSchema.parse(JSON.parse(readFileSync(manifestPath, 'utf8')));
    await server.publish(ko, manifest, 'stable');
    await eventually('VMALLOCCHUNK shows in /proc/meminfo', patched);
    // stored once the transition has completed, a moment after the patch went live
    await eventually('the agent stored the patch for boot', async () =>
      (await sh('ls /var/lib/suture/patches 2>/dev/null || true')).includes('livepatch_meminfo'),
    );
    // a copy stored for another build of this kernel: boot-apply must skip it
    await sh(
      [
        'cd /var/lib/suture/patches',
        'src=$(ls | grep livepatch_meminfo | head -n 1)',
        'cp -a "$src" 900000-livepatch_meminfo_other',
        `sed -i 's/${kernel.buildId}/${'0'.repeat(40)}/' 900000-livepatch_meminfo_other/*.json`,
        'grep -l 0000000000000000000000000000000000000000 900000-livepatch_meminfo_other/*.json',
      ].join(' && '),
    );
  });

  test('after a reboot on the same disk the patch is live before the agent and the network', async () => {
    await guest.shutdown(vm, 'reboot');
    vm = await guest.boot({ net: true });
    await sh('systemctl is-system-running --wait || true', 240_000);
    assert.ok(await patched(), 'VMALLOCCHUNK is back after the reboot');
    const applied = await stamp('suture-livepatch.service', 'ActiveEnterTimestampMonotonic');
    const agent = await stamp('suture-agent.service', 'ExecMainStartTimestampMonotonic');
    const networkPre = await stamp('network-pre.target', 'ActiveEnterTimestampMonotonic');
    const online = await stamp('network-online.target', 'ActiveEnterTimestampMonotonic');
    assert.ok(applied > 0 && agent > 0 && online > 0, `${applied} ${agent} ${online}`);
    assert.ok(applied <= networkPre, `boot unit done at ${applied} µs, network-pre at ${networkPre} µs`);
    assert.ok(applied < online, `boot unit done at ${applied} µs, network-online at ${online} µs`);
    assert.ok(applied < agent, `boot unit done at ${applied} µs, the agent started at ${agent} µs`);
    // the journal tells the same order: boot-apply's outcome, then the agent's start
    const journal = await sh(
      'journalctl -b -o cat --no-pager -u suture-livepatch.service -u suture-agent.service',
    );
    const lines = journal.split('\n');
    const appliedLine = lines.findIndex((l) => /^livepatch_meminfo: applied/.test(l));
    const agentLine = lines.findIndex((l) =>
      /Started suture-agent\.service|Started .*[Ss]uture.*agent/.test(l),
    );
    assert.ok(appliedLine >= 0, journal);
    assert.ok(agentLine > appliedLine, journal);
    // the copy for another build: skipped with both build ids, never loaded
    const skipped = lines.find((l) => l.startsWith('livepatch_meminfo: skipped'));
    assert.ok(skipped?.includes(`(${'0'.repeat(12)})`), journal);
    assert.ok(skipped?.includes(`(${kernel.buildId.slice(0, 12)})`), journal);
    assert.equal((await sh('ls /sys/kernel/livepatch')).trim(), 'livepatch_meminfo');
  });
});

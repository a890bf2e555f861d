/*
 * The crash-loop guard and the kill switch, end to end, on real machines: a Debian 12 guest (systemd,
 * its own disk across reboots, Suture installed from the release tarball, the agent under systemd)
 * and a second, busybox-initramfs VM running the agent from this checkout, both enrolled in the tier
 * `stable` of the real server on the host (10.0.2.2 from the guests).
 *
 *   bad:      host/testdata/livepatch-warn (a WARN right after klp_enable_patch) published to
 *             `stable`; the Debian guest's agent applies it, the guard marks it bad with the kernel
 *             log excerpt, the agent reports `bad`, the server halts it for the tier (admin API,
 *             `suture rollout status`, /metrics)
 *   peer:     the second agent of the tier checks in only after the halt: offered nothing, nothing
 *             downloaded, nothing loaded
 *   reboot:   the boot unit re-applies a good patch (livepatch-cmdline) delivered meanwhile and skips
 *             the bad one, stored for boot too, saying why; the agent never loads it though it is
 *             still published, even once an admin resumes the tier; `suture status` exits 4 with the
 *             excerpt; a revoke settles it
 *   no-apply: `suture.mode=no-apply` on the kernel command line: the boot unit loads nothing and says
 *             why, `suture status` shows the mode, the agent checks in but applies nothing
 *
 * The reboots are the guest's own `systemctl reboot` (the test's, as a watchdog or an operator would).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runKbuild } from '../klp/kbuild.js';
import type { Manifest } from '../manifest/manifest.js';
import { buildTarball } from '../package/tarball.js';
import type { TierRollout } from '../server/store.js';
import { DebianGuest } from '../vm/guest/debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from '../vm/guest/media.js';
import { bootVm, type VmSession } from '../vm/index.js';
import { type ServerBackend, startFleetBackend } from './testing/fleet-backend.js';

const execFileAsync = promisify(execFile);
const testdata = fileURLToPath(new URL('../../src/host/testdata/', import.meta.url));
const CMDLINE_MARK = 'this has been live patched';

interface Patch {
  ko: string;
  manifest: Manifest;
}

let kernel: KernelTarget;
let work: string;
let server: ServerBackend;
let guest: DebianGuest;
let vm: VmSession;
let peer: VmSession | undefined;
let guestId: string;
let peerId: string;
let warn: Patch;
let cmdline: Patch;
let warnId: string;

/** Run on `on`: exit code, output (\r dropped) and the kernel problems seen meanwhile; never asserts. */
async function run(on: VmSession, cmd: string, timeoutMs = 180_000) {
  const r = await on.exec(cmd, { timeoutMs });
  return { code: r.exitCode, out: r.output.replaceAll('\r', ''), problems: r.problems };
}

/** Run on `on`, asserting exit 0 and no kernel problem meanwhile; the output. */
async function sh(on: VmSession, cmd: string, timeoutMs = 180_000): Promise<string> {
  const r = await run(on, cmd, timeoutMs);
  assert.deepEqual(r.problems, [], `kernel problem during ${cmd}`);
  assert.equal(r.code, 0, `${cmd} exited ${r.code}:\n${r.out}`);
  return r.out;
}

/** Poll `check` every 2 s for up to `ms`; on timeout fail with the guest agent's journal. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 240_000): Promise<void> {
  for (const t0 = Date.now(); !(await check()); await new Promise((r) => setTimeout(r, 2000))) {
    if (Date.now() - t0 <= ms) continue;
    const journal = (await run(vm, 'journalctl -b -u suture-agent --no-pager | tail -n 40', 30_000)).out;
    assert.fail(`${what}: not so after ${ms} ms\nagent journal:\n${journal}`);
  }
}

/** The JSON a command prints after its first `{` (the guest's channel may prefix nothing else). */
function json<T>(out: string): T {
  return JSON.parse(out.slice(out.indexOf('{'))) as T;
}

async function buildPatch(dirName: string, moduleName: string, fn: string, file: string): Promise<Patch> {
  const dir = join(work, dirName);
  cpSync(join(testdata, dirName), dir, { recursive: true });
  await runKbuild(kernel.sourceTree, dir);
  const ko = join(dir, `${dirName}.ko`);
  const manifest: Manifest = {
    schema: 1,
    name: moduleName.replace(/^livepatch_/, ''),
    version: '1',
    kernel: { release: kernel.release, buildId: kernel.buildId, debianVersion: kernel.debianVersion },
    replace: false,
    objects: [{ name: 'vmlinux', functions: [{ name: fn, sympos: 0, file, change: 'changed' }] }],
    module: {
      file: `${dirName}.ko`,
      sha256: createHash('sha256').update(readFileSync(ko)).digest('hex'),
      name: moduleName,
    },
    source: { description: `host/testdata/${dirName}` },
    cves: [],
    tool: { name: 'suture', version: '0.1.0' },
  };
  return { ko, manifest };
}

/**
 * The real CLI on the host against the server (admin commands). Asynchronous: the server runs in this
 * process, so a synchronous child would block the very server it asks.
 */
async function suture(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, ['bin/suture.js', ...args], {
    env: { ...process.env, SUTURE_SERVER: server.url, SUTURE_ADMIN_TOKEN: server.adminToken },
  });
  return stdout;
}

const checkins = async (id: string) =>
  (await server.admin<{ checkins: number }>('GET', `/admin/v1/machines/${id}`)).checkins;

/** Wait until the guest's agent has checked in `n` more times (so it has acted on the latest answer). */
async function checksInAgain(n = 2): Promise<void> {
  const from = await checkins(guestId);
  await eventually(`${n} more check-ins`, async () => (await checkins(guestId)) >= from + n);
}

const stableTier = async (id: string) =>
  (await server.admin<TierRollout[]>('GET', `/admin/v1/patches/${id}/rollout`)).find(
    (t) => t.tier === 'stable',
  );

/** Lines of this boot's kernel log that name a module. */
const dmesgOf = async (on: VmSession, module: string) =>
  (await run(on, `dmesg | grep -c ${module} || true`)).out.trim();

async function reboot(append?: string): Promise<void> {
  await guest.shutdown(vm, 'reboot');
  vm = await guest.boot({ net: true, ...(append ? { append } : {}) });
  await run(vm, 'systemctl is-system-running --wait || true', 240_000);
}

describe('crash-loop guard, halt and kill switch end to end (Debian guest + a second agent)', {
  timeout: 1_800_000,
}, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    work = mkdtempSync(join(tmpdir(), 'suture-crash-loop-vm-'));
    warn = await buildPatch('livepatch-warn', 'livepatch_warn', 'version_proc_show', 'fs/proc/version.c');
    cmdline = await buildPatch(
      'livepatch-cmdline',
      'livepatch_cmdline',
      'cmdline_proc_show',
      'fs/proc/cmdline.c',
    );
    const tarball = (await buildTarball(join(work, 'release'))).path;
    server = await startFleetBackend({ host: '127.0.0.1', checkinIntervalSeconds: 2 });
    guest = await DebianGuest.create({ kernel, media: [tarball] });
    [vm, peer] = await Promise.all([
      guest.boot({ net: true }),
      bootVm({ kernel, withSuture: true, net: true, timeoutMs: 1_200_000 }),
    ]);
    await sh(
      vm,
      `${MOUNT_MEDIA} && tar -xzf ${MEDIA_MOUNT}/${tarball.split('/').pop()} -C / && umount ${MEDIA_MOUNT}`,
    );
  });

  after(async () => {
    await peer?.close();
    await vm?.close();
    guest?.dispose();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('both machines enrolled in one tier; the Debian guest runs the boot unit and the agent', async () => {
    assert.match(await sh(vm, 'suture host install-service'), /enabled suture-livepatch\.service/);
    const url = `http://10.0.2.2:${server.port}`;
    const enrolled = await sh(
      vm,
      `suture agent enable ${await server.createToken('stable')} --server ${url}`,
    );
    guestId = /enrolled as (m-[0-9a-f]{16})/.exec(enrolled)?.[1] ?? assert.fail(enrolled);
    await sh(vm, 'suture agent install-service');
    // the second machine enrolls now but runs no agent until the patch is halted
    const p = peer as VmSession;
    const e2 = await sh(p, `suture agent enable ${await server.createToken('stable')} --server ${url}`);
    peerId = /enrolled as (m-[0-9a-f]{16})/.exec(e2)?.[1] ?? assert.fail(e2);
    assert.match(e2, /tier stable/);
    await eventually('the guest agent checks in', async () => (await checkins(guestId)) >= 1);
  });

  test('a WARN right after the load: marked bad, reported, the server halts it for the tier', async () => {
    warnId = await server.publish(warn.ko, warn.manifest, 'stable');
    await eventually(
      'the server has the bad report',
      async () => (await server.machineState(guestId, warnId)) === 'bad',
    );
    const report = await server.machineReport(guestId, warnId);
    assert.match(report?.reason ?? '', /warn/);
    assert.ok(
      vm.problems.some((p) => p.kind === 'warning'),
      `the console shows the WARN: ${JSON.stringify(vm.problems.map((p) => p.title))}`,
    );
    // the guard leaves the patch loaded (unloading is the operator's call) and marks it
    const st = await run(vm, 'suture status --json');
    assert.equal(st.code, 4, st.out);
    const s = json<{ verdict: string; bad: Array<{ patch: string; reason: string; kernelLog: string }> }>(
      st.out,
    );
    assert.equal(s.verdict, 'bad');
    assert.deepEqual(
      s.bad.map((b) => [b.patch, b.reason]),
      [['livepatch_warn', 'warn']],
    );
    assert.match(s.bad[0]?.kernelLog ?? '', /a WARN on purpose right after klp_enable_patch/);
    const journal = await sh(vm, 'journalctl -b -o cat --no-pager -u suture-agent.service');
    assert.match(journal, /warn 1: marked bad by the host's crash-loop guard|HOST-PATCH-BAD/);

    // halted for `stable` on that first report: admin API, CLI, /metrics
    const tier = await stableTier(warnId);
    assert.ok(tier?.haltedAt, JSON.stringify(tier));
    assert.match(tier?.haltReason ?? '', /bad|warn/);
    assert.match(tier?.haltExcerpt ?? '', /WARNING: CPU: \d+ PID: \d+ at .*livepatch_warn_init/);
    assert.match(await suture('rollout', 'status', warnId), /^HALTED in stable at .+/m);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`^suture_patch_halted\\{[^}]*patch="${warnId}"[^}]*tier="stable"[^}]*\\} 1$`, 'm'),
    );
  });

  test('a second agent of the tier, checking in after the halt, never receives the patch', async () => {
    const p = peer as VmSession;
    for (let i = 0; i < 2; i++) await sh(p, 'suture agent run --once > /tmp/agent.log 2>&1', 240_000);
    assert.ok((await checkins(peerId)) >= 2);
    const status = json<{ patchState: { text: string }; serverCheckin: { state: string } }>(
      await sh(p, 'suture agent status --format json'),
    );
    assert.equal(status.serverCheckin.state, 'succeeded');
    // the halted patch is for this kernel, only not offered to this machine
    assert.equal(
      status.patchState.text,
      `nothing to apply: the server has patches for ${kernel.release}, none offered to this machine (tier stable)`,
    );
    assert.equal(await server.machineState(peerId, warnId), undefined);
    assert.equal((await sh(p, 'ls /sys/kernel/livepatch')).trim(), '');
    assert.equal((await sh(p, 'ls /var/lib/suture/agent/modules 2>/dev/null || true')).trim(), '');
    assert.equal((await sh(p, `grep -c ${warnId} /var/lib/suture/agent/state.json || true`)).trim(), '0');
    assert.equal(await dmesgOf(p, 'livepatch_warn'), '0');
    await p.close();
    peer = undefined;
  });

  test('after a reboot the boot unit skips the bad patch, the agent never loads it, even resumed', async () => {
    await server.publish(cmdline.ko, cmdline.manifest, 'stable');
    await eventually('the good patch is live', async () =>
      (await sh(vm, 'cat /proc/cmdline')).includes(CMDLINE_MARK),
    );
    await eventually('the agent stored it for boot', async () =>
      (await sh(vm, 'ls /var/lib/suture/patches 2>/dev/null || true')).includes('livepatch_cmdline'),
    );
    // the bad one was stored for boot too (the store is written as its transition completed, the
    // guard's verdict comes after the settle window): the boot unit must skip it
    assert.match(await sh(vm, 'ls /var/lib/suture/patches'), /-livepatch_warn$/m);
    await reboot();
    assert.equal((await sh(vm, 'ls /sys/kernel/livepatch')).trim(), 'livepatch_cmdline');
    const unit = await sh(vm, 'journalctl -b -o cat --no-pager -u suture-livepatch.service');
    assert.match(unit, /^livepatch_cmdline: applied/m);
    assert.match(unit, /^livepatch_warn: skipped \(marked bad \(warn at /m);
    // the agent keeps checking in (the patch is still published and halted) and never loads it
    await checksInAgain(3);
    assert.equal(await dmesgOf(vm, 'livepatch_warn'), '0');
    const st = await run(vm, 'suture status');
    assert.equal(st.code, 4, st.out);
    assert.match(st.out, /marked bad by the crash-loop guard:\n\s+livepatch_warn: warn at /);
    assert.match(st.out, /WARNING: CPU: \d+ PID: \d+ at .*livepatch_warn_init/);
    assert.equal(await server.machineState(guestId, warnId), 'bad');
    assert.ok((await stableTier(warnId))?.haltedAt);

    // an admin lifts the halt: the host's verdict still stands on this machine
    assert.doesNotMatch(await suture('resume', warnId, '--tier', 'stable'), /HALTED/);
    await checksInAgain(3);
    assert.equal(await dmesgOf(vm, 'livepatch_warn'), '0');
    assert.equal((await sh(vm, 'ls /sys/kernel/livepatch')).trim(), 'livepatch_cmdline');
    // and withdraws it
    await suture('revoke', warnId, '--reason', 'WARN right after the load');
    await eventually(
      'the revoke is settled',
      async () => (await server.machineState(guestId, warnId)) === 'reverted',
    );
    assert.equal((await sh(vm, 'ls /sys/kernel/livepatch')).trim(), 'livepatch_cmdline');
    // nor kept for boot any longer: clearing its mark could not bring a revoked patch back
    assert.doesNotMatch(await sh(vm, 'ls /var/lib/suture/patches'), /livepatch_warn/);
    assert.match(await sh(vm, 'ls /var/lib/suture/guard'), /^bad-livepatch_warn\.json$/m);
  });

  test('suture.mode=no-apply on the kernel command line: nothing is loaded at boot, status says why', async () => {
    await reboot('suture.mode=no-apply');
    assert.match(await sh(vm, 'cat /proc/cmdline'), /suture\.mode=no-apply/);
    assert.equal((await sh(vm, 'ls /sys/kernel/livepatch')).trim(), '');
    const unit = await sh(vm, 'journalctl -b -o cat --no-pager -u suture-livepatch.service');
    assert.match(
      unit,
      /^livepatch_cmdline: skipped \(suture\.mode=no-apply \(from the kernel command line\): nothing is loaded\)/m,
    );
    const st = await run(vm, 'suture status');
    assert.match(st.out, /^mode: no-apply \(kernel command line\): nothing is loaded/m);
    // the agent still checks in (the good patch is offered) but applies nothing
    await checksInAgain(3);
    assert.equal((await sh(vm, 'ls /sys/kernel/livepatch')).trim(), '');
    assert.equal(await dmesgOf(vm, 'livepatch_cmdline'), '0');
  });
});

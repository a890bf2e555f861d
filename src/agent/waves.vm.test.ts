/*
 * A phased rollout over 1,000 in-process agents and two real agents in QEMU VMs, one tier, waves
 * 30/60/100 %. The real server runs in-process on the host's loopback (SQLite); the 1,000 are
 * FakeMachines speaking the real protocol over HTTP, claiming the VMs' exact kernel; the two VMs run
 * the real agent (`suture agent enable` + `suture agent run`) on the target kernel.
 *
 * A machine's wave is fixed by a stable hash of the id the server gives it at enrollment, so the test
 * cannot choose it: each VM enrolls (for real, each time in a fresh state directory) until one of
 * them holds an id in wave 1 and the other one in wave 3; the enrollments not used are disabled on
 * the server, as an operator retires a machine (a disabled machine counts in no wave).
 *
 *   rollout 1 (the blog's /proc/cmdline patch), each wave gated on all of its machines healthy:
 *     wave 1 opens at publish: the wave-1 VM applies it, the wave-3 VM is offered nothing;
 *     the in-process wave 1 applies → the server's own gate opens wave 2 (the wave-3 VM: still nothing);
 *     the in-process wave 2 applies → wave 3 opens → the wave-3 VM's agent downloads and applies it.
 *   rollout 2 (a livepatch of a function the kernel does not have: its load fails for real):
 *     the wave-1 VM's agent reports the failed apply → the tier is halted; the in-process wave 1
 *     applies and checks in healthy, enough for the gate, yet waves 2 and 3 never open and the
 *     wave-3 VM is never offered it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { buildModule } from '../klp/kbuild.js';
import type { Manifest } from '../manifest/manifest.js';
import type { TierRollout } from '../server/store/rollouts.js';
import { rolloutBucket } from '../server/store/rollouts.js';
import { FakeMachine } from '../server/testing/fleet-fixture.js';
import { bootVm, type VmSession } from '../vm/index.js';
import { markerLivepatch, markerManifest } from '../vm/testing/fixtures.js';
import { type ServerBackend, startFleetBackend } from './testing/fleet-backend.js';

const FLEET = 1000;
const WAVES = [30, 60, 100];
const TIER = 'prod';
const MARK = 'suture-waves-livepatch';
const ALL_HEALTHY = 1_000_000; // gate above any wave's size: the whole wave must be healthy

interface Built {
  ko: string;
  manifest: Manifest;
}

/** A livepatch of vmlinux's `oldName` printing `mark` (vm/testing/fixtures.ts), built with kbuild. */
async function buildPatch(name: string, mark: string, oldName?: string): Promise<Built> {
  const dir = join(work, `livepatch-${name}`);
  mkdirSync(dir);
  writeFileSync(join(dir, `livepatch-${name}.c`), markerLivepatch(mark, oldName));
  writeFileSync(join(dir, 'Kbuild'), `obj-m := livepatch-${name}.o\n`);
  const ko = (await buildModule(dir, kernel)).ko;
  return { ko, manifest: markerManifest(kernel, ko, name, oldName) };
}

interface VmAgent {
  vm: VmSession;
  label: string;
  /** every enrollment made in this VM: state directory and machine id */
  tries: { dir: string; id: string }[];
  id: string;
  dir: string;
}

let kernel: KernelTarget;
let work: string;
let server: ServerBackend;
let fleet: FakeMachine[];
let cmdlinePatch: Built;
let brokenPatch: Built;
const vms: VmAgent[] = [];
let wave1: VmAgent;
let wave3: VmAgent;

const waveOf = (id: string): number => WAVES.findIndex((p) => rolloutBucket(id) < p) + 1;

async function sh(vm: VmSession, cmd: string, timeoutMs = 120_000): Promise<string> {
  const r = await vm.exec(cmd, { timeoutMs });
  assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
  assert.equal(r.exitCode, 0, `${cmd} exited ${r.exitCode}:\n${r.output}`);
  return r.output.replaceAll('\r', '');
}

/** run `fn` over `items`, `width` at a time */
async function each<T>(items: T[], fn: (x: T) => Promise<unknown>, width = 50): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 240_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) {
      const logs = await Promise.all(
        vms.map(
          async (a) =>
            `${a.label}:\n${(await a.vm.exec('cat /tmp/agent.log', { timeoutMs: 30_000 }).catch(() => ({ output: '?' }))).output}`,
        ),
      );
      assert.fail(`timed out after ${ms} ms waiting until ${what}\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}

const rollout = async (patchId: string): Promise<TierRollout> => {
  const all = await server.admin<TierRollout[]>('GET', `/admin/v1/patches/${patchId}/rollout`);
  const r = all.find((t) => t.tier === TIER);
  assert.ok(r, `no rollout of ${patchId} for ${TIER}`);
  return r;
};
const checkins = async (a: VmAgent) =>
  (await server.admin<{ checkins: number }>('GET', `/admin/v1/machines/${a.id}`)).checkins;
const livepatches = async (a: VmAgent) => (await sh(a.vm, 'ls /sys/kernel/livepatch')).trim();
const cmdline = async (a: VmAgent) => (await sh(a.vm, 'cat /proc/cmdline')).trim();

async function agentOffered(a: VmAgent): Promise<string[]> {
  const out = await sh(a.vm, `suture agent status --format json --state-dir ${a.dir}`);
  const s = JSON.parse(out.slice(out.indexOf('{'))) as { patches: { patchId: string; state: string }[] };
  return s.patches.map((p) => p.patchId);
}

/** The VM agent checked in twice more: it has seen what the server offers it now. */
async function checksInAgain(a: VmAgent): Promise<void> {
  const from = await checkins(a);
  await eventually(`${a.label}: 2 more check-ins`, async () => (await checkins(a)) >= from + 2, 120_000);
}

/** The in-process machines whose check-in offers `patchId` right now. */
async function offeredTo(patchId: string): Promise<Set<string>> {
  const got = new Set<string>();
  await each(fleet, async (m) => {
    if ((await m.checkin()).offered.some((o) => o.patchId === patchId)) got.add(m.id);
  });
  return got;
}

const fleetIn = (waves: number[]) => fleet.filter((m) => waves.includes(waveOf(m.id)));
const ids = (ms: FakeMachine[]) => new Set(ms.map((m) => m.id));

/** Apply on the in-process machines: report applied, then check in (healthy: a check-in since). */
async function applyOn(machines: FakeMachine[], patchId: string): Promise<void> {
  await each(machines, (m) => m.report({ patchId, state: 'applied' }));
  await each(machines, (m) => m.checkin());
}

/** Enroll once more in the VM, in a fresh state directory. */
async function enrollOnce(a: VmAgent, token: string): Promise<void> {
  const dir = `/var/lib/suture-try/${a.tries.length}`;
  const out = await sh(
    a.vm,
    `suture agent enable ${token} --server http://10.0.2.2:${server.port} --state-dir ${dir}`,
    180_000,
  );
  const id = /enrolled as (m-[0-9a-f]{16})/.exec(out)?.[1];
  assert.ok(id, out);
  a.tries.push({ dir, id });
}

/** One VM with an enrollment in wave 1 and the other one in wave 3, or undefined. */
function pick(): [VmAgent, VmAgent] | undefined {
  for (const [x, y] of [vms, [...vms].reverse()] as [VmAgent, VmAgent][]) {
    const one = x.tries.find((t) => waveOf(t.id) === 1);
    const three = y.tries.find((t) => waveOf(t.id) === 3);
    if (one && three) {
      Object.assign(x, one, { label: 'wave-1 VM' });
      Object.assign(y, three, { label: 'wave-3 VM' });
      return [x, y];
    }
  }
  return undefined;
}

describe('waves: 1,000 in-process agents and two VM agents, three waves', { timeout: 1_500_000 }, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    work = mkdtempSync(join(tmpdir(), 'suture-waves-vm-'));
    const booting = Promise.all(
      ['a', 'b'].map((label) =>
        bootVm({ kernel, withSuture: true, net: true, timeoutMs: 1_500_000 }).then((vm) =>
          vms.push({ vm, label, tries: [], id: '', dir: '' }),
        ),
      ),
    );
    cmdlinePatch = await buildPatch('waves', MARK);
    brokenPatch = await buildPatch('waves-missing', 'never', 'suture_waves_no_such_function');
    server = await startFleetBackend({ host: '127.0.0.1', checkinIntervalSeconds: 2 });
    const token = await server.createToken(TIER);
    fleet = Array.from(
      { length: FLEET },
      (_, i) => new FakeMachine(server.url, `sim-${i}`, { release: kernel.release, buildId: kernel.buildId }),
    );
    await each(fleet, (m) => m.enroll(token));
    await booting;

    let chosen = pick();
    for (let round = 0; !chosen && round < 12; round++) {
      await Promise.all(vms.map((a) => enrollOnce(a, token)));
      chosen = pick();
    }
    assert.ok(chosen, `no wave-1/wave-3 pair in ${JSON.stringify(vms.map((a) => a.tries))}`);
    [wave1, wave3] = chosen;
    const unused = vms.flatMap((a) => a.tries.filter((t) => t.id !== a.id));
    for (const t of unused)
      await server.admin('POST', `/admin/v1/machines/${t.id}/disable`, {
        reason: 'test: another wave was wanted',
      });
    for (const a of vms)
      await sh(
        a.vm,
        `setsid suture agent run --interval 2s --state-dir ${a.dir} > /tmp/agent.log 2>&1 < /dev/null &`,
      );
    for (const a of vms)
      await eventually(`${a.label}: the first check-in`, async () => (await checkins(a)) >= 1);
  });

  after(async () => {
    await Promise.all(vms.map((a) => a.vm.close()));
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('waves open in order; the wave-3 VM gets the patch only after waves 1 and 2 passed their gates', async () => {
    assert.equal(waveOf(wave1.id), 1);
    assert.equal(waveOf(wave3.id), 3);
    const patchId = await server.publish(cmdlinePatch.ko, cmdlinePatch.manifest, TIER, {
      waves: WAVES,
      gateCheckins: ALL_HEALTHY,
      soakSeconds: 1,
    });
    assert.deepEqual(await offeredTo(patchId), ids(fleetIn([1])), 'wave 1 only');
    await eventually('the wave-1 VM applies it', async () => (await cmdline(wave1)).includes(MARK));
    await eventually(
      'the server has its report',
      async () => (await server.machineState(wave1.id, patchId)) === 'applied',
    );
    await checksInAgain(wave3);
    assert.equal(await livepatches(wave3), '', 'wave 3 is not open: nothing loaded');
    assert.ok(!(await agentOffered(wave3)).includes(patchId), 'the wave-3 agent was offered nothing');
    assert.equal(
      (await rollout(patchId)).wavesOpen,
      1,
      'the in-process wave 1 has not applied: the gate holds',
    );

    await applyOn(fleetIn([1]), patchId);
    await eventually('the gate opens wave 2', async () => (await rollout(patchId)).wavesOpen >= 2);
    assert.deepEqual(await offeredTo(patchId), ids(fleetIn([1, 2])), 'waves 1 and 2');
    await checksInAgain(wave3);
    assert.equal(await livepatches(wave3), '', 'wave 3 is not open yet');
    assert.equal(await server.machineState(wave3.id, patchId), undefined);
    assert.equal(
      (await rollout(patchId)).wavesOpen,
      2,
      'the in-process wave 2 has not applied: the gate holds',
    );

    await applyOn(fleetIn([2]), patchId);
    await eventually('the gate opens wave 3', async () => (await rollout(patchId)).wavesOpen === 3);
    await eventually('the wave-3 VM applies it', async () => (await cmdline(wave3)).includes(MARK));
    assert.equal(await livepatches(wave3), 'livepatch_waves');
    await eventually(
      'the server has its report',
      async () => (await server.machineState(wave3.id, patchId)) === 'applied',
    );
    assert.equal((await offeredTo(patchId)).size, FLEET, 'wave 3 is the whole tier');

    const st = await rollout(patchId);
    const opened = st.waves.map((w) => Date.parse(w.openedAt ?? ''));
    const [o1 = NaN, o2 = NaN, o3 = NaN] = opened;
    assert.ok(o1 <= o2 && o2 <= o3, `waves opened in order: ${JSON.stringify(st.waves)}`);
    assert.deepEqual(
      st.waves.map((w) => [w.size, w.applied]),
      [1, 2, 3].map((n) => {
        const size = fleetIn([n]).length + (n === 1 || n === 3 ? 1 : 0);
        return [size, n === 3 ? 1 : size];
      }),
      'every machine counted in its own wave; in wave 3 only the VM applied',
    );
    const audit = await server.admin<{ action: string; target: string; detail: { wave: number } }[]>(
      'GET',
      '/admin/v1/audit',
    );
    const waveOpens = audit.filter((a) => a.action === 'rollout.wave-open' && a.target === patchId);
    assert.deepEqual(waveOpens.map((a) => a.detail.wave).sort(), [2, 3]);
  });

  test('a failed apply reported by the wave-1 VM halts the rollout: waves 2 and 3 never open', async () => {
    await sh(wave1.vm, 'mkdir -p /etc/suture && echo no-apply > /etc/suture/mode');
    await checksInAgain(wave1); // it now checks in without applying
    const patchId = await server.publish(brokenPatch.ko, brokenPatch.manifest, TIER, {
      waves: WAVES,
      gateCheckins: 5,
      soakSeconds: 1,
    });
    const inWave1 = fleetIn([1]);
    assert.deepEqual(await offeredTo(patchId), ids(inWave1), 'wave 1 only');
    await checksInAgain(wave1);
    assert.ok((await agentOffered(wave1)).includes(patchId), 'the wave-1 agent was offered it');
    assert.equal(await server.machineState(wave1.id, patchId), undefined, 'no-apply: not tried yet');

    await sh(wave1.vm, 'rm /etc/suture/mode');
    await eventually(
      'the wave-1 VM reports the failed apply',
      async () => (await server.machineState(wave1.id, patchId)) === 'failed',
    );
    const report = await server.machineReport(wave1.id, patchId);
    assert.match(
      report?.reason ?? '',
      /suture_waves_no_such_function|Invalid argument|not found/i,
      JSON.stringify(report),
    );
    assert.equal(await livepatches(wave1), 'livepatch_waves', 'only the first rollout is loaded');
    const halted = await rollout(patchId);
    assert.ok(halted.haltedAt, 'the failure report halted the tier');
    assert.equal(halted.wavesOpen, 1);

    // the in-process wave 1 (offered before the halt) applies and checks in: the gate's count is met
    await applyOn(inWave1, patchId);
    assert.ok(((await rollout(patchId)).waves[0]?.healthy ?? 0) >= 5);
    const later = (h: number) => new Date(Date.now() + h * 3600_000).toISOString();
    assert.deepEqual(await server.advanceRollouts(later(1)), [], 'halted: wave 2 does not open');
    assert.deepEqual(await server.advanceRollouts(later(2)), [], 'nor wave 3');
    const after = await rollout(patchId);
    assert.equal(after.wavesOpen, 1);
    assert.equal(after.waves[0]?.failed, 1);
    assert.ok(!after.waves[1]?.openedAt && !after.waves[2]?.openedAt);

    const offered = await offeredTo(patchId);
    assert.deepEqual(offered, ids(inWave1), 'only the machines that run it keep it');
    await checksInAgain(wave3);
    assert.equal(await server.machineState(wave3.id, patchId), undefined, 'the wave-3 VM never had it');
    assert.ok(!(await agentOffered(wave3)).includes(patchId), 'the wave-3 agent was never offered it');
    assert.equal(await livepatches(wave3), 'livepatch_waves');
    const audit = await server.admin<{ action: string; target: string }[]>('GET', '/admin/v1/audit');
    assert.equal(audit.filter((a) => a.action === 'rollout.wave-open' && a.target === patchId).length, 0);
  });
});

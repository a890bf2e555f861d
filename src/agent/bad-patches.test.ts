/*
 * The agent and the host's safety nets, on the fake kernel with the real server: a patch whose load is
 * followed by a WARN is recorded and reported `bad` (reason, kernel log) and never applied again
 * although the server keeps offering it, and reverted (and dropped from the boot store) when the
 * server revokes it; the kill switch (no-refresh: no check-in; no-apply: check-in
 * but nothing loaded; garbage: normal, with a warning in the log).
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { badPatches, listLivepatches, storedPatches } from '../host/index.js';
import { patchStatusSchema } from '../manifest/protocol.js';
import { checkInOnce } from './checkin.js';
import { patchStatusOf } from './report.js';
import { loadState } from './state.js';
import { type Cleanups, publishable, type Rig, rig } from './testing/agent-rig.js';

const cleanups: Cleanups = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const WARN = [
  '------------[ cut here ]------------',
  'WARNING: CPU: 1 PID: 90 at meminfo.c:12 livepatch_warn_init+0x1d/0x30 [livepatch_warn]',
  '---[ end trace 0000000000000000 ]---',
].join('\n');

/** livepatch_warn published, applied at one check-in, WARNed: loaded, and marked and recorded bad. */
async function warnedBad(): Promise<{ r: Rig; id: string }> {
  const r = await rig(cleanups);
  const { file, manifest } = publishable(r, 'livepatch_warn');
  r.k.warnAfterLoad.set('livepatch_warn', WARN);
  const id = await r.backend.publish(file, manifest, 'canary');
  await checkInOnce(r.ctx);
  assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'bad');
  return { r, id };
}

describe('agent: bad patches', () => {
  test('a WARN after the load: recorded and reported bad, never applied again', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_warn');
    r.k.warnAfterLoad.set('livepatch_warn', WARN);
    const id = await r.backend.publish(file, manifest, 'canary');
    const first = await checkInOnce(r.ctx);
    assert.equal(first.ok, true);
    const s = loadState(r.ctx.stateDir);
    const rec = s.patches[id];
    assert.equal(rec?.outcome, 'bad', r.log.join('\n'));
    assert.equal(rec?.badReason, 'warn');
    assert.match(rec?.kernelLog ?? '', /WARNING: CPU: 1 PID: 90/);
    const wire = patchStatusOf(rec as NonNullable<typeof rec>);
    assert.equal(wire.state, 'bad');
    assert.equal(wire.reason, 'warn');
    assert.match(wire.excerpt ?? '', /WARNING: CPU: 1 PID: 90/);
    assert.ok(patchStatusSchema.safeParse(wire).success, 'the report is valid on the wire');
    assert.equal(badPatches(r.k.roots)[0]?.patch, 'livepatch_warn', 'the host holds the mark');
    assert.deepEqual(s.outbox, [], 'the report was delivered');
    assert.equal(await r.backend.machineState(s.enrollment?.machineId as string, id), 'bad');

    // the server still offers it; the agent never hands it to the kernel again
    r.k.warnAfterLoad.clear();
    await checkInOnce(r.ctx);
    await checkInOnce(r.ctx);
    assert.equal(r.insmods().length, 1);
    assert.deepEqual(r.hostApplies, ['warn']);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'bad');
  });

  test('revoked while still loaded (the guard leaves a WARNing patch in): the agent reverts it', async () => {
    const { r, id } = await warnedBad();
    assert.deepEqual(
      listLivepatches(r.k.roots).map((p) => p.name),
      ['livepatch_warn'],
      'the WARNing patch stays loaded',
    );
    await r.backend.revoke(id);
    await checkInOnce(r.ctx);
    assert.deepEqual(listLivepatches(r.k.roots), [], r.log.join('\n'));
    assert.ok(r.k.calls.includes('rmmod livepatch_warn'), 'unloaded');
    assert.deepEqual(storedPatches(r.k.roots), [], 'and no longer stored for boot');
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id]?.outcome, 'reverted');
    assert.equal(await r.backend.machineState(s.enrollment?.machineId as string, id), 'reverted');
    assert.equal(badPatches(r.k.roots)[0]?.patch, 'livepatch_warn', 'the mark stays on the host');
  });

  test('revoked after a reboot dropped it: the copy stored for boot goes too', async () => {
    const { r, id } = await warnedBad();
    // stored as its transition completed, before the guard's verdict: the boot unit skips it
    assert.deepEqual(
      storedPatches(r.k.roots).map((p) => p.manifest.module.name),
      ['livepatch_warn'],
    );
    // the reboot: the kernel forgets the module, the disk keeps the store and the mark
    for (const d of ['kernel/livepatch/livepatch_warn', 'module/livepatch_warn'])
      rmSync(join(r.k.roots.sys, d), { recursive: true, force: true });
    await r.backend.revoke(id);
    await checkInOnce(r.ctx);
    assert.deepEqual(storedPatches(r.k.roots), [], 'a revoked patch never comes back at a boot');
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'reverted');
    assert.equal(badPatches(r.k.roots)[0]?.patch, 'livepatch_warn', 'the mark stays on the host');
  });

  test('a bad mark the host wrote (e.g. at boot) is picked up for an offer never applied here', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_hang');
    const id = await r.backend.publish(file, manifest, 'canary');
    mkdirSync(join(r.k.roots.state, 'guard'), { recursive: true });
    writeFileSync(
      join(r.k.roots.state, 'guard', 'bad-livepatch_hang.json'),
      JSON.stringify({ patch: 'livepatch_hang', reason: 'no-return', kernelLog: '', at: 'then' }),
    );
    await checkInOnce(r.ctx);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'bad');
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.badReason, 'no-return');
    assert.deepEqual(r.insmods(), []);
    assert.ok(r.log.some((l) => /hang 1: marked bad by the host's crash-loop guard/.test(l)));
  });
});

describe('agent: kill switch', () => {
  test('no-refresh and stop: no check-in at all', async () => {
    const r = await rig(cleanups);
    const before = loadState(r.ctx.stateDir).lastCheck;
    for (const mode of ['no-refresh', 'stop']) {
      writeFileSync(join(r.k.roots.proc, 'cmdline'), `ro suture.mode=${mode}\n`);
      const out = await checkInOnce(r.ctx);
      assert.equal(out.ok, false);
      assert.equal(!out.ok && out.code, 'AGENT-MODE');
      assert.match(!out.ok ? out.error : '', new RegExp(`suture.mode=${mode} \\(kernel command line\\)`));
    }
    assert.deepEqual(loadState(r.ctx.stateDir).lastCheck, before, 'the server was not asked');
  });

  test('no-apply: checks in, loads nothing; back to normal: applies', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    await r.backend.publish(file, manifest, 'canary');
    mkdirSync(r.k.roots.config, { recursive: true });
    writeFileSync(join(r.k.roots.config, 'mode'), 'no-apply\n');
    const out = await checkInOnce(r.ctx);
    assert.equal(out.ok, true);
    assert.equal(loadState(r.ctx.stateDir).offered.length, 1, 'the check-in happened');
    assert.deepEqual(r.insmods(), []);
    writeFileSync(join(r.k.roots.config, 'mode'), 'no-aply\n');
    const again = await checkInOnce(r.ctx);
    assert.deepEqual(again.ok && again.applied, ['cmdline']);
    assert.ok(r.log.some((l) => /warning: .*no-aply.*taken as normal/.test(l)));
  });
});

/*
 * Upgrades (issue #12, defect 1): v2 of a livepatch under the same module name as v1 (v1 not revoked)
 * replaces v1 in the kernel, and the server hears "v2 applied" only after the kernel has it; a lower
 * version of a lineage is never installed; a livepatch of the offer's module name loaded by hand is
 * not taken for the offer. On the host layer's fake kernel, with the real server.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { applyLivepatch } from '../host/index.js';
import { compareVersions } from '../manifest/lineage.js';
import { checkInOnce } from './checkin.js';
import { loadState } from './state.js';
import { type Cleanups, publishableVersion, rig } from './testing/agent-rig.js';

const cleanups: Cleanups = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('upgrades and lineages', () => {
  test('versions compare by runs of digits and of other characters', () => {
    assert.equal(compareVersions('2', '10'), -1);
    assert.equal(compareVersions('10', '9'), 1);
    assert.equal(compareVersions('007', '7'), 0);
    assert.equal(compareVersions('1.1', '1'), 1);
    assert.equal(compareVersions('2026.11.24-1', '2026.11.24-2'), -1);
    assert.equal(compareVersions('1a', '1b'), -1);
    assert.equal(compareVersions('2', 'rc'), 1, 'a digit run is newer than a non-digit one');
  });

  test('v2 under the same module name replaces v1; the server shows v2 applied only after the kernel has it', async () => {
    const r = await rig(cleanups);
    const v1 = publishableVersion(r, 'livepatch_cmdline', '1');
    const id1 = await r.backend.publish(v1.file, v1.manifest, 'canary');
    await checkInOnce(r.ctx);
    const machine = loadState(r.ctx.stateDir).enrollment?.machineId as string;
    assert.equal(await r.backend.machineState(machine, id1), 'applied');

    const v2 = publishableVersion(r, 'livepatch_cmdline', '2');
    const id2 = await r.backend.publish(v2.file, v2.manifest, 'canary');
    assert.equal(
      await r.backend.machineState(machine, id2),
      undefined,
      'not applied before the agent says so',
    );
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.applied, ['cmdline'], r.log.join('\n'));
    // the kernel: v1 out (disabled, unloaded), then v2 in — the last insmod is v2's file
    const ops = r.k.calls
      .filter((c) => c.startsWith('insmod') || c.startsWith('rmmod'))
      .map((c) => c.replace(/^insmod .*\/([0-9a-f]{64})\.ko$/, 'insmod $1'));
    assert.deepEqual(ops, [
      `insmod ${v1.manifest.module.sha256}`,
      'rmmod livepatch_cmdline',
      `insmod ${v2.manifest.module.sha256}`,
    ]);
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), [
      { name: 'livepatch_cmdline', enabled: true, transition: false },
    ]);
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id2]?.outcome, 'applied');
    assert.equal(s.patches[id1]?.outcome, 'reverted');
    assert.equal(s.patches[id1]?.reason, 'replaced by cmdline 2');
    assert.equal(await r.backend.machineState(machine, id2), 'applied');
    assert.equal(await r.backend.machineState(machine, id1), 'reverted');
    // v1 is still offered (not revoked) but never installed again over v2
    await checkInOnce(r.ctx);
    assert.equal(r.k.calls.filter((c) => c.startsWith('insmod')).length, 2);
    assert.match(
      r.log.join('\n'),
      /not installing cmdline 1: version 2 of it was applied here \(no downgrade\)/,
    );
  });

  test('when v2 fails to load after v1 was disabled, v1 is put back from the cache', async () => {
    const r = await rig(cleanups);
    const v1 = publishableVersion(r, 'livepatch_cmdline', '1');
    const id1 = await r.backend.publish(v1.file, v1.manifest, 'canary');
    await checkInOnce(r.ctx);
    const v2 = publishableVersion(r, 'livepatch_cmdline', '2');
    const id2 = await r.backend.publish(v2.file, v2.manifest, 'canary');
    r.k.failing.set('livepatch_cmdline', 'livepatch: failed to load v2 (test)');
    const loadV2 = r.k.calls.length;
    // the fake kernel fails every load of that name while set: let the first one fail only
    const port = r.ctx.kernel;
    let armed = true;
    r.ctx.kernel = {
      ...port,
      apply: async (a) => {
        const out = await port.apply(a);
        if (armed) {
          armed = false;
          r.k.failing.delete('livepatch_cmdline');
        }
        return out;
      },
    };
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.failed, ['cmdline'], r.log.join('\n'));
    const ops = r.k.calls.slice(loadV2).map((c) => c.replace(/^insmod .*\/([0-9a-f]{64})\.ko$/, 'insmod $1'));
    assert.deepEqual(
      ops.filter((c) => /^(insmod|rmmod)/.test(c)),
      [
        'rmmod livepatch_cmdline',
        `insmod ${v2.manifest.module.sha256}`,
        `insmod ${v1.manifest.module.sha256}`,
      ],
    );
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id2]?.outcome, 'failed');
    assert.equal(s.patches[id1]?.outcome, 'applied', 'v1 is back');
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), [
      { name: 'livepatch_cmdline', enabled: true, transition: false },
    ]);
  });

  test('a cumulative v2 under another module name replaces v1 atomically', async () => {
    const r = await rig(cleanups);
    const v1 = publishableVersion(r, 'livepatch_cmdline', '1');
    const id1 = await r.backend.publish(v1.file, v1.manifest, 'canary');
    await checkInOnce(r.ctx);
    const v2 = publishableVersion(r, 'livepatch_cmdline_v2', '2', { name: 'cmdline', replace: true });
    const id2 = await r.backend.publish(v2.file, v2.manifest, 'canary');
    await checkInOnce(r.ctx);
    const live = (await r.ctx.kernel.listLivepatches()).filter((l) => l.enabled).map((l) => l.name);
    assert.deepEqual(live, ['livepatch_cmdline_v2']);
    const v2Load = r.k.calls.findIndex((c) => c.includes(v2.manifest.module.sha256));
    const v1Out = r.k.calls.indexOf('rmmod livepatch_cmdline');
    assert.ok(v2Load >= 0 && (v1Out < 0 || v2Load < v1Out), `v2 was loaded before v1 left: ${r.k.calls}`);
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id2]?.outcome, 'applied');
    assert.equal(s.patches[id1]?.outcome, 'reverted');
  });

  test('a livepatch of the same module name loaded by hand is neither taken for the offer nor touched', async () => {
    const r = await rig(cleanups);
    const hand = publishableVersion(r, 'livepatch_cmdline', '1');
    await applyLivepatch({ module: hand.file, roots: r.k.roots, timeoutMs: 2000 });
    const offered = publishableVersion(r, 'livepatch_cmdline', '2');
    const id = await r.backend.publish(offered.file, offered.manifest, 'canary');
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.refused, ['cmdline']);
    const rec = loadState(r.ctx.stateDir).patches[id];
    assert.equal(rec?.code, 'AGENT-MODULE-NAME-TAKEN');
    assert.deepEqual(r.hostApplies, [], 'never handed to the kernel');
    assert.ok(!r.k.calls.includes('rmmod livepatch_cmdline'), 'the hand-applied one stays');
    const machine = loadState(r.ctx.stateDir).enrollment?.machineId as string;
    assert.equal(await r.backend.machineState(machine, id), 'failed', 'reported as not applied');
  });
});

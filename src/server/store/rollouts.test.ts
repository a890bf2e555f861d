/*
 * Rollout waves and halts in the store, on both engines (PostgreSQL skipped, saying why, only when it
 * is not installed): the reach of an offer per wave, the gate (healthy machines and soak), a failure
 * halting a waved tier, a `bad` report halting any tier, resume, and the audit trail of each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CheckinRequest } from '../../manifest/protocol.js';
import { hashSecret } from '../credentials.js';
import type { Store } from '../store.js';
import { type EngineDatabase, onEachEngine, openEngineStore } from '../testing/engines.js';
import { BUILD_ID, patchRecord, RELEASE } from '../testing/fleet-fixture.js';
import { rolloutBucket } from './rollouts.js';

const T0 = Date.parse('2026-06-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const audit = (action: string, seconds = 0) => ({
  at: at(seconds),
  actor: 'test',
  action,
  target: 'x',
  detail: {},
});
const P = '00000000000000a1';

const patch = (id: string, tiers: string[]) => patchRecord(id, { name: 'meminfo', tiers, at: at(0) });

const checkin = (patchId: string, state: 'applied' | 'failed' | 'bad'): CheckinRequest => ({
  kernel: { release: RELEASE, buildId: BUILD_ID },
  hostname: 'h',
  agentVersion: '1',
  patches: [{ patchId, state, ...(state === 'applied' ? {} : { reason: 'boom' }) }],
});

function suite(engine: string, database: EngineDatabase): void {
  describe(`rollouts on ${engine}`, () => {
    let store: Store;
    let skip: string | undefined;
    let close: (() => Promise<void>) | undefined;
    before(async () => {
      const db = await database();
      if (db && typeof db === 'object') skip = db.skip;
      else ({ store, close } = await openEngineStore(db, 'rollouts'));
    });
    after(async () => close?.());

    const machines = (tier: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        machineId: `m-${tier}-${i}`,
        credentialHash: hashSecret(`cred-${tier}-${i}`),
        hostname: `${tier}-${i}`,
        kernelRelease: RELEASE,
        buildId: BUILD_ID,
        agentVersion: '1',
        tier,
      }));
    const reach = async (tier: string) =>
      (await store.offers(RELEASE, BUILD_ID, tier)).find((o) => o.id === P)?.reach;

    test('waves open in order behind their gate; a failure halts; resume lifts it', async (t) => {
      if (skip) return t.skip(skip);
      const now = at(0);
      await store.createToken(
        { id: 't-r', hash: hashSecret('tok-r'), tier: 'canary', note: '', uses: 0, createdAt: now },
        audit('token.create'),
      );
      const fleet = machines('canary', 120);
      await store.bulkInsertMachines('t-r', fleet, now);
      const plan = { waves: [10, 50, 100], gateCheckins: 3, soakSeconds: 60 };
      assert.equal(await store.publish(patch(P, ['canary']), audit('publish'), plan), 'ok');
      assert.equal(await reach('canary'), 10, 'only the first wave is offered it');
      const wave1 = fleet.filter((m) => rolloutBucket(m.machineId) < 10);
      const wave2 = fleet.filter((m) => rolloutBucket(m.machineId) >= 10 && rolloutBucket(m.machineId) < 50);
      assert.ok(wave1.length >= 3 && wave2.length > 0, 'the hash spreads 120 machines over the waves');

      // applied, but no check-in since applying: not healthy yet
      for (const m of wave1) await store.checkin(m.credentialHash, checkin(P, 'applied'), at(10));
      assert.deepEqual(await store.advanceRollouts(at(120)), [], 'applied is not yet healthy');
      for (const m of wave1) await store.checkin(m.credentialHash, checkin(P, 'applied'), at(20));
      assert.deepEqual(await store.advanceRollouts(at(59)), [], 'the soak time holds the next wave');
      assert.deepEqual(await store.advanceRollouts(at(61)), [{ patchId: P, tier: 'canary', wave: 2 }]);
      assert.deepEqual(await store.advanceRollouts(at(62)), [], 'a wave opens once');
      assert.equal(await reach('canary'), 50);

      const [status] = await store.rolloutStatus(P);
      assert.ok(status);
      assert.equal(status.wavesOpen, 2);
      assert.deepEqual(
        status.waves.map((w) => [w.percent, w.size, w.applied, w.healthy, w.failed, w.openedAt]),
        [
          [10, wave1.length, wave1.length, wave1.length, 0, at(0)],
          [50, wave2.length, 0, 0, 0, at(61)],
          [100, fleet.length - wave1.length - wave2.length, 0, 0, 0, undefined],
        ],
      );

      // a failure report in wave 2 halts the waved tier: no wave opens, no new machine is offered it
      const failing = wave2[0];
      assert.ok(failing);
      const out = await store.report(
        failing.credentialHash,
        {
          kernel: { release: RELEASE, buildId: BUILD_ID },
          action: 'apply',
          status: { patchId: P, state: 'failed', reason: 'transition stalled' },
        },
        at(70),
      );
      assert.ok(typeof out === 'object' && out.halted, 'the report halted it');
      assert.equal(await reach('canary'), 0);
      for (const m of wave2) await store.checkin(m.credentialHash, checkin(P, 'applied'), at(80));
      for (const m of wave2) await store.checkin(m.credentialHash, checkin(P, 'applied'), at(90));
      assert.deepEqual(await store.advanceRollouts(at(600)), [], 'a halted rollout stays where it is');
      assert.deepEqual(
        (await store.listHalts()).map((x) => [x.patchId, x.tier]),
        [[P, 'canary']],
      );

      assert.equal(await store.resumePatch(P, 'canary', audit('resume', 700)), 'ok');
      assert.equal(await store.resumePatch(P, 'canary', audit('resume', 701)), 'unchanged');
      assert.equal(await store.resumePatch(P, 'stable', audit('resume', 701)), 'unknown');
      assert.equal(await reach('canary'), 50);
      assert.deepEqual(await store.advanceRollouts(at(800)), [{ patchId: P, tier: 'canary', wave: 3 }]);
      assert.equal(await reach('canary'), 100);
      const actions = (await store.listAudit()).map((a) => a.action);
      for (const a of ['publish', 'rollout.wave-open', 'halt', 'resume'])
        assert.ok(actions.includes(a), `audited: ${a}`);
    });

    test('a bad report halts any tier; a failure halts only a waved one', async (t) => {
      if (skip) return t.skip(skip);
      const Q = '00000000000000b2';
      await store.createToken(
        { id: 't-s', hash: hashSecret('tok-s'), tier: 'stable', note: '', uses: 0, createdAt: at(0) },
        audit('token.create'),
      );
      const fleet = machines('stable', 3);
      await store.bulkInsertMachines('t-s', fleet, at(0));
      assert.equal(await store.publish(patch(Q, ['stable']), audit('publish')), 'ok');
      const report = (i: number, state: 'failed' | 'bad') =>
        store.report(
          fleet[i]?.credentialHash ?? '',
          {
            kernel: { release: RELEASE, buildId: BUILD_ID },
            action: 'apply',
            status: { patchId: Q, state, reason: 'WARN after load', excerpt: 'WARNING: CPU: 0 PID: 1 at x' },
          },
          at(5),
        );
      const failed = await report(0, 'failed');
      assert.ok(typeof failed === 'object' && !failed.halted, 'a failure in an unwaved tier halts nothing');
      const offered = (await store.offers(RELEASE, BUILD_ID, 'stable')).find((o) => o.id === Q);
      assert.equal(offered?.reach, 100);
      const bad = await report(1, 'bad');
      assert.ok(typeof bad === 'object' && bad.halted, 'the first bad report halts it');
      const again = await report(2, 'bad');
      assert.ok(typeof again === 'object' && !again.halted, 'already halted');
      assert.equal((await store.offers(RELEASE, BUILD_ID, 'stable')).find((o) => o.id === Q)?.reach, 0);
      const [st] = await store.rolloutStatus(Q);
      assert.equal(st?.haltExcerpt, 'WARNING: CPU: 0 PID: 1 at x');
      assert.match(st?.haltReason ?? '', /^bad on m-stable-1: WARN after load/);
      assert.equal(st?.waves[0]?.failed, 3, 'failed and bad both count as failed');
    });
  });
}

onEachEngine('rollouts_test', suite);

/*
 * The store contract, run against both engines (engines.ts): SQLite in a temp dir, and PostgreSQL in
 * a throwaway cluster (skipped, saying why, only when PostgreSQL is not installed).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { hashSecret } from './credentials.js';
import { openStore, type Store } from './store.js';
import { type EngineDatabase, onEachEngine, openEngineStore } from './testing/engines.js';
import { BUILD_ID, OTHER_BUILD_ID, patchRecord, RELEASE } from './testing/fleet-fixture.js';

const audit = (action: string) => ({
  at: new Date().toISOString(),
  actor: 'test',
  action,
  target: 'x',
  detail: {},
});

/** The store tests' patch: the fixture's record, fixing CVE-2026-1234. */
const patch = (id: string, opts: { buildId?: string; tiers?: string[]; at: string; name?: string }) =>
  patchRecord(id, { ...opts, cves: ['CVE-2026-1234'] });

function storeSuite(engine: string, database: EngineDatabase): void {
  describe(`store on ${engine}`, () => {
    let store: Store;
    let skip: string | undefined;
    let close: (() => Promise<void>) | undefined;
    before(async () => {
      const db = await database();
      if (db && typeof db === 'object') skip = db.skip;
      else ({ store, close } = await openEngineStore(db, 'store'));
    });
    after(async () => close?.());

    const enroll = async (tokenHash: string, host: string, buildId = BUILD_ID) => {
      const cred = `cred-${host}`;
      const out = await store.enroll({
        tokenHash,
        machineId: `m-${host}`,
        credentialHash: hashSecret(cred),
        hostname: host,
        kernelRelease: RELEASE,
        buildId,
        agentVersion: '1',
        now: new Date().toISOString(),
      });
      return { out, cred };
    };

    test('tokens: tier, use limit, expiry, unknown', async (t) => {
      if (skip) return t.skip(skip);
      const now = new Date().toISOString();
      await store.createToken(
        { id: 't-canary', hash: hashSecret('tok-canary'), tier: 'canary', note: '', uses: 0, createdAt: now },
        audit('token.create'),
      );
      await store.createToken(
        {
          id: 't-stable',
          hash: hashSecret('tok-stable'),
          tier: 'stable',
          note: '',
          uses: 0,
          createdAt: now,
          maxUses: 1,
        },
        audit('token.create'),
      );
      await store.createToken(
        {
          id: 't-old',
          hash: hashSecret('tok-old'),
          tier: 'stable',
          note: '',
          uses: 0,
          createdAt: now,
          expiresAt: '2000-01-01T00:00:00.000Z',
        },
        audit('token.create'),
      );
      assert.deepEqual((await enroll(hashSecret('tok-canary'), 'c1')).out, { ok: true, tier: 'canary' });
      assert.deepEqual((await enroll(hashSecret('tok-stable'), 's1')).out, { ok: true, tier: 'stable' });
      assert.deepEqual((await enroll(hashSecret('tok-stable'), 's2')).out, {
        ok: false,
        reason: 'exhausted',
      });
      assert.deepEqual((await enroll(hashSecret('tok-old'), 's3')).out, { ok: false, reason: 'expired' });
      assert.deepEqual((await enroll(hashSecret('nope'), 's4')).out, { ok: false, reason: 'unknown' });
      assert.deepEqual((await enroll(hashSecret('tok-canary'), 'o1', OTHER_BUILD_ID)).out, {
        ok: true,
        tier: 'canary',
      });
      const tokens = await store.listTokens();
      assert.deepEqual(tokens.map((x) => [x.id, x.uses]).sort(), [
        ['t-canary', 2],
        ['t-old', 0],
        ['t-stable', 1],
      ]);
      const dump = JSON.stringify(await store.dump());
      assert.ok(!dump.includes('tok-canary') && !dump.includes('cred-c1'), 'no secret is stored in clear');
    });

    test('publish is one transaction: a failure inside leaves nothing', async (t) => {
      if (skip) return t.skip(skip);
      const before = await store.dump();
      // the second tier row violates the primary key, after the patch row was inserted
      await assert.rejects(
        store.publish(
          patch('00000000000000ff', { at: '2026-01-01T00:00:00.000Z', tiers: ['canary', 'canary'] }),
          audit('publish'),
        ),
      );
      assert.deepEqual(await store.dump(), before);
      assert.equal(await store.getPatch('00000000000000ff'), undefined);
    });

    test('offers: exact kernel, tier, newest first; promote; revoke', async (t) => {
      if (skip) return t.skip(skip);
      assert.equal(
        await store.publish(patch('0000000000000001', { at: '2026-01-01T00:00:00.000Z' }), audit('publish')),
        'ok',
      );
      assert.equal(
        await store.publish(patch('0000000000000001', { at: '2026-01-01T00:00:00.000Z' }), audit('publish')),
        'exists',
      );
      await store.publish(patch('0000000000000002', { at: '2026-01-02T00:00:00.000Z' }), audit('publish'));
      await store.publish(
        patch('0000000000000003', { at: '2026-01-03T00:00:00.000Z', buildId: OTHER_BUILD_ID }),
        audit('publish'),
      );
      const ids = async (tier: string, buildId = BUILD_ID) =>
        (await store.offers(RELEASE, buildId, tier)).map((p) => p.id);
      assert.deepEqual(await ids('canary'), ['0000000000000002', '0000000000000001']);
      assert.deepEqual(await ids('stable'), []);
      assert.deepEqual(await ids('canary', OTHER_BUILD_ID), ['0000000000000003']);
      const now = new Date().toISOString();
      assert.equal(await store.promote('0000000000000001', 'stable', audit('promote'), now), 'ok');
      assert.equal(await store.promote('0000000000000001', 'stable', audit('promote'), now), 'unchanged');
      assert.equal(await store.promote('00000000000000aa', 'stable', audit('promote'), now), 'unknown');
      assert.deepEqual(await ids('stable'), ['0000000000000001']);
      assert.deepEqual((await store.getPatch('0000000000000001'))?.tiers, ['canary', 'stable']);
      assert.equal(await store.revoke('0000000000000001', 'bad', audit('revoke'), now), 'ok');
      assert.equal(await store.revoke('0000000000000001', 'bad', audit('revoke'), now), 'unchanged');
      assert.equal(await store.promote('0000000000000001', 'gold', audit('promote'), now), 'revoked');
      assert.deepEqual(await ids('stable'), []);
      assert.deepEqual(await ids('canary'), ['0000000000000002']);
      for (const tier of ['canary', 'stable']) {
        assert.deepEqual(
          (await store.revokedFor(RELEASE, BUILD_ID, tier)).map((p) => p.id),
          ['0000000000000001'],
        );
      }
      assert.deepEqual(await store.revokedFor(RELEASE, OTHER_BUILD_ID, 'canary'), []);
      const actions = (await store.listAudit()).map((a) => a.action);
      assert.equal(actions.filter((a) => a === 'revoke').length, 1, 'no audit entry for a no-op');
    });

    test('check-ins and reports: states, failures, rollout, counters', async (t) => {
      if (skip) return t.skip(skip);
      const kernel = { release: RELEASE, buildId: BUILD_ID };
      const req = { kernel, hostname: 'c1', agentVersion: '2', patches: [] };
      const m = await store.checkin(hashSecret('cred-c1'), req, '2026-02-01T00:00:00.000Z');
      // sequence: the machine's check-in count, the signed answer's freshness
      assert.deepEqual(m, {
        id: 'm-c1',
        tier: 'canary',
        kernelRelease: RELEASE,
        buildId: BUILD_ID,
        sequence: 1,
      });
      const before = await store.dump();
      assert.equal(await store.checkin(hashSecret('wrong'), req, '2026-02-01T00:00:01.000Z'), undefined);
      assert.equal(
        await store.report(
          hashSecret('wrong'),
          { kernel, action: 'apply', status: { patchId: '0000000000000002', state: 'applied' } },
          'x',
        ),
        undefined,
      );
      assert.deepEqual(await store.dump(), before, 'an unknown credential changes nothing');

      await store.checkin(
        hashSecret('cred-c1'),
        {
          ...req,
          patches: [
            { patchId: '0000000000000002', state: 'applied' },
            { patchId: 'abcdefabcdefabcd', state: 'applied' },
          ],
        },
        '2026-02-01T00:01:00.000Z',
      );
      assert.equal(
        await store.report(
          hashSecret('cred-s1'),
          { kernel, action: 'apply', status: { patchId: '0000000000000fff', state: 'applied' } },
          'x',
        ),
        'unknown-patch',
      );
      await store.promote('0000000000000002', 'stable', audit('promote'), '2026-02-01T00:02:00.000Z');
      await store.report(
        hashSecret('cred-s1'),
        {
          kernel,
          action: 'apply',
          status: {
            patchId: '0000000000000002',
            state: 'failed',
            reason: 'transition stalled',
            transition: {
              seconds: 60,
              stalled: true,
              blockingTasks: [{ pid: 7, comm: 'kworker', stack: [] }],
            },
          },
        },
        '2026-02-01T00:03:00.000Z',
      );
      const c1 = await store.getMachine('m-c1');
      assert.equal(c1?.state, 'applied');
      assert.equal(c1?.checkins, 2);
      assert.equal(c1?.agentVersion, '2');
      assert.deepEqual(
        c1?.patches.map((p) => [p.patchId, p.state, p.cves]),
        [['0000000000000002', 'applied', ['CVE-2026-1234']]],
        'an unknown patch id from the agent is ignored',
      );
      const failures = await store.failures();
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.hostname, 's1');
      assert.equal(failures[0]?.reason, 'transition stalled');
      assert.equal(failures[0]?.transition?.blockingTasks[0]?.comm, 'kworker');
      const rollout = (await store.rollout()).filter((r) => r.patchId === '0000000000000002');
      assert.deepEqual(
        rollout.map((r) => [r.tier, r.eligible, r.applied, r.failed]),
        [
          ['canary', 1, 1, 0],
          ['stable', 1, 0, 1],
        ],
      );
      const fleet = await store.fleet();
      assert.deepEqual(
        fleet.map((f) => [f.buildId === BUILD_ID ? 'B' : 'O', f.tier, f.state, f.machines]),
        [
          ['B', 'canary', 'applied', 1],
          ['B', 'stable', 'failed', 1],
          ['O', 'canary', 'none', 1],
        ],
      );
      const counters = await store.counters();
      assert.equal(counters.checkins, 2);
      assert.equal(counters.machines, 3);
      assert.deepEqual(counters.applyFailures, [{ patchId: '0000000000000002', n: 1 }]);
      // the agent's full list replaces the recorded one
      const again = await store.checkin(hashSecret('cred-c1'), req, '2026-02-01T00:04:00.000Z');
      assert.equal(again?.sequence, 3, 'one more per check-in, never reused');
      assert.deepEqual((await store.getMachine('m-c1'))?.patches, []);
      const kernels = await store.listKernels();
      assert.deepEqual(
        kernels.map((k) => [k.buildId === BUILD_ID ? 'B' : 'O', k.patches, k.activePatches, k.machines]),
        [
          ['B', 2, 1, 2],
          ['O', 1, 1, 1],
        ],
      );
    });

    test('a machine moved to another tier checks in with it; the move is audited once', async (t) => {
      if (skip) return t.skip(skip);
      const kernel = { release: RELEASE, buildId: BUILD_ID };
      const req = { kernel, hostname: 'o1', agentVersion: '2', patches: [] };
      assert.equal(
        (await store.checkin(hashSecret('cred-o1'), req, '2026-03-01T00:00:00.000Z'))?.tier,
        'canary',
      );
      const before = (await store.listAudit()).length;
      assert.equal(await store.setMachineTier('m-o1', 'stable', audit('machine.tier')), 'ok');
      assert.equal(await store.setMachineTier('m-o1', 'stable', audit('machine.tier')), 'unchanged');
      assert.equal(await store.setMachineTier('m-nobody', 'stable', audit('machine.tier')), 'unknown');
      assert.equal(
        (await store.checkin(hashSecret('cred-o1'), req, '2026-03-01T00:01:00.000Z'))?.tier,
        'stable',
      );
      assert.equal((await store.getMachine('m-o1'))?.tier, 'stable');
      const entries = await store.listAudit();
      assert.equal(entries.length, before + 1, 'only the real move is audited');
      assert.deepEqual(entries[0]?.detail, { from: 'canary' });
    });

    test('sessions expire and close; rotation needs the current hash and ends every session', async (t) => {
      if (skip) return t.skip(skip);
      const at = (m: number) => new Date(Date.UTC(2026, 5, 1, 0, m)).toISOString();
      await store.openSession({ idHash: 's1', actor: 'a', now: at(0), expiresAt: at(10) });
      await store.openSession({ idHash: 's2', actor: 'a', now: at(0), expiresAt: at(10) });
      assert.equal(await store.sessionValid('s1', at(5)), true);
      assert.equal(await store.sessionValid('s1', at(10)), false, 'expired at its expiry');
      assert.equal(await store.sessionValid('nope', at(5)), false);
      await store.closeSession('s1');
      assert.equal(await store.sessionValid('s1', at(5)), false, 'closed');
      await store.setSetting('admin_token_hash', 'h-old');
      assert.equal(await store.rotateAdminToken('h-stale', 'h-new', audit('admin.rotate-token')), false);
      assert.equal(await store.sessionValid('s2', at(5)), true, 'a refused rotation ends nothing');
      assert.equal(await store.rotateAdminToken('h-old', 'h-new', audit('admin.rotate-token')), true);
      assert.equal(await store.getSetting('admin_token_hash'), 'h-new');
      assert.equal(await store.sessionValid('s2', at(5)), false, 'rotation ends every session');
    });

    test('revoked tokens and disabled machines', async (t) => {
      if (skip) return t.skip(skip);
      await store.createToken(
        {
          id: 't-rev',
          hash: hashSecret('tok-rev'),
          tier: 'canary',
          note: '',
          uses: 0,
          createdAt: '2026-01-01T00:00:00.000Z',
        },
        audit('token.create'),
      );
      const { cred } = await enroll(hashSecret('tok-rev'), 'd1');
      assert.equal(await store.revokeToken('t-rev', audit('token.revoke'), '2026-01-02T00:00:00.000Z'), 'ok');
      assert.equal(
        await store.revokeToken('t-rev', audit('token.revoke'), '2026-01-02T00:00:00.000Z'),
        'unchanged',
      );
      assert.equal(
        await store.revokeToken('t-none', audit('token.revoke'), '2026-01-02T00:00:00.000Z'),
        'unknown',
      );
      assert.deepEqual((await enroll(hashSecret('tok-rev'), 'd2')).out, { ok: false, reason: 'revoked' });
      const now = '2026-01-03T00:00:00.000Z';
      assert.equal(await store.setMachineDisabled('m-d1', true, audit('machine.disable'), now), 'ok');
      assert.equal(await store.setMachineDisabled('m-d1', true, audit('machine.disable'), now), 'unchanged');
      const req = {
        kernel: { release: RELEASE, buildId: BUILD_ID },
        hostname: 'd1',
        agentVersion: '1',
        patches: [],
      };
      assert.equal(await store.checkin(hashSecret(cred), req, now), undefined);
      assert.equal(await store.machineByCredential(hashSecret(cred)), undefined);
      assert.equal(await store.credentialDisabled(hashSecret(cred)), true);
      assert.equal((await store.getMachine('m-d1'))?.disabledAt, now);
      assert.equal(await store.setMachineDisabled('m-d1', false, audit('machine.enable'), now), 'ok');
      assert.equal((await store.checkin(hashSecret(cred), req, now))?.id, 'm-d1');
      assert.equal(await store.credentialDisabled(hashSecret(cred)), false);
    });

    test('concurrent enrollments and check-ins neither interleave nor lose writes', async (t) => {
      if (skip) return t.skip(skip);
      await store.createToken(
        {
          id: 't-many',
          hash: hashSecret('tok-many'),
          tier: 'canary',
          note: '',
          uses: 0,
          createdAt: '2026-01-01T00:00:00.000Z',
          maxUses: 40,
        },
        audit('token.create'),
      );
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => enroll(hashSecret('tok-many'), `p${i}`)),
      );
      assert.equal(results.filter((r) => r.out.ok).length, 40, 'exactly maxUses enrollments succeed');
      const ok = results.filter((r) => r.out.ok);
      const req = { kernel: { release: RELEASE, buildId: BUILD_ID }, hostname: 'p', agentVersion: '1' };
      await Promise.all(
        ok.flatMap((r) =>
          [0, 1, 2].map(() =>
            store.checkin(
              hashSecret(r.cred),
              { ...req, patches: [{ patchId: '0000000000000002', state: 'applied' }] },
              new Date().toISOString(),
            ),
          ),
        ),
      );
      const machines = (await store.listMachines()).filter((m) => m.id.startsWith('m-p'));
      assert.equal(machines.length, 40);
      assert.ok(machines.every((m) => m.checkins === 3 && m.state === 'applied'));
      assert.equal((await store.listTokens()).find((x) => x.id === 't-many')?.uses, 40);
    });

    test('one reported patch is recorded only once offered; its later states too; in order', async (t) => {
      if (skip) return t.skip(skip);
      await store.createToken(
        { id: 't-one', hash: hashSecret('tok-one'), tier: 'stable', note: '', uses: 0, createdAt: 'x' },
        audit('token.create'),
      );
      assert.ok((await enroll(hashSecret('tok-one'), 'one1')).out.ok);
      await store.publish(patch('0000000000000031', { at: '2026-03-01T00:00:00.000Z' }), audit('publish'));
      const req = { kernel: { release: RELEASE, buildId: BUILD_ID }, hostname: 'one1', agentVersion: '1' };
      const states = async () =>
        (await store.getMachine('m-one1'))?.patches.map((p) => [p.patchId, p.state, p.reason]);
      const say = (
        state: 'applied' | 'failed' | 'transition',
        reason?: string,
        patchId = '0000000000000031',
      ) => store.checkin(hashSecret('cred-one1'), { ...req, patches: [{ patchId, state, reason }] }, 'x');
      await say('applied');
      assert.deepEqual(await states(), [], 'offered to canary only: a stable machine may not report it');
      await say('applied', undefined, 'ffffffffffffffff');
      assert.deepEqual(await states(), [], 'a patch id this server does not know is ignored');
      await store.promote('0000000000000031', 'stable', audit('promote'), '2026-03-01T00:01:00.000Z');
      await say('transition');
      assert.deepEqual(await states(), [['0000000000000031', 'transition', undefined]]);
      // two check-ins of one machine in one batch: both count, the later one's state stands
      const [a, b] = await Promise.all([say('failed', 'stalled'), say('applied')]);
      assert.deepEqual([a?.sequence, b?.sequence], [4, 5]);
      assert.deepEqual(await states(), [['0000000000000031', 'applied', undefined]]);
      await say('applied');
      assert.deepEqual(await states(), [['0000000000000031', 'applied', undefined]], 'the same state again');
    });

    test('check-ins arriving while a batch is written: each answered after its own write, in sequence', async (t) => {
      if (skip) return t.skip(skip);
      await store.createToken(
        { id: 't-turns', hash: hashSecret('tok-turns'), tier: 'canary', note: '', uses: 0, createdAt: 'x' },
        audit('token.create'),
      );
      const hosts = ['q0', 'q1', 'q2'];
      for (const h of hosts) assert.ok((await enroll(hashSecret('tok-turns'), h)).out.ok);
      const req = {
        kernel: { release: RELEASE, buildId: BUILD_ID },
        hostname: 'q',
        agentVersion: '1',
        patches: [],
      };
      const checkins = () => store.listMachines().then((ms) => new Map(ms.map((m) => [m.id, m.checkins])));
      // 60 check-ins, one per event-loop turn, none awaited before the next: they meet batches in flight
      const answers: Array<Promise<{ id: string; sequence: number; recorded: number }>> = [];
      for (let i = 0; i < 60; i++) {
        const host = hosts[i % hosts.length] as string;
        answers.push(
          store.checkin(hashSecret(`cred-${host}`), req, new Date().toISOString()).then(async (m) => {
            assert.ok(m, `check-in ${i} authenticated`);
            // answered only once written: a read made after the answer sees at least this check-in
            return { id: m.id, sequence: m.sequence, recorded: (await checkins()).get(m.id) ?? 0 };
          }),
        );
        await new Promise((r) => setImmediate(r));
      }
      const done = await Promise.all(answers);
      for (const h of hosts) {
        const mine = done.filter((d) => d.id === `m-${h}`);
        assert.deepEqual(
          mine.map((d) => d.sequence).sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, k) => k + 1),
          `m-${h}: every check-in has its own sequence number, none lost or repeated`,
        );
        for (const d of mine)
          assert.ok(d.recorded >= d.sequence, `m-${h} #${d.sequence} durable when answered`);
      }
      const final = await checkins();
      for (const h of hosts) assert.equal(final.get(`m-${h}`), 20);
    });
  });
}

/** A database made before a column was added (dropped here by hand) gets the column at open. */
function columnMigrationTest(engine: string, database: EngineDatabase): void {
  test(`a database from before a column was added gets it at open, on ${engine}`, async (t) => {
    const db = await database('store_migrate');
    if (db && typeof db === 'object') return t.skip(db.skip);
    const reopened = async (database: string) => {
      const store = await openStore(database);
      try {
        assert.equal(
          await store.setMachineDisabled('m-none', true, audit('machine.disable'), 'x'),
          'unknown',
        );
        assert.deepEqual(await store.listMachines(), []);
      } finally {
        await store.close();
      }
    };
    if (db) {
      await (await openStore(db)).close();
      const client = new pg.Client({ connectionString: db });
      await client.connect();
      await client.query('ALTER TABLE machines DROP COLUMN disabled_at');
      await client.end();
      await reopened(db);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'suture-store-'));
    try {
      const file = join(dir, 'old.db');
      await (await openStore(file)).close();
      const raw = new Database(file);
      raw.exec('ALTER TABLE machines DROP COLUMN disabled_at');
      raw.close();
      await reopened(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

onEachEngine('store_test', (engine, database) => {
  storeSuite(engine, database);
  columnMigrationTest(engine, database);
});

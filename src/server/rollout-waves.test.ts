/*
 * A phased rollout over a simulated fleet of 1,000 agents, in-process: a real server on loopback
 * (SQLite), 1,000 FakeMachines enrolled over HTTP and speaking the real protocol, the admin client the
 * CLI uses. Waves 10/50/100 % open in order as their machines apply and check in healthy; a failure
 * reported in wave 1 of another rollout stops its waves 2 and 3 (no machine outside wave 1 is ever
 * offered it); a `bad` report halts an unwaved tier for every further machine; resume lifts a halt.
 *
 * The gate is driven by `store.advanceRollouts(time)` with times past the soak: the plans soak an
 * hour, so the server's own timer (real time) never opens a wave during the test.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AdminClient } from './admin-client.js';
import { defaultLimits } from './limits.js';
import { type RunningServer, startServer } from './server.js';
import { rolloutBucket } from './store/rollouts.js';
import { FakeMachine, writePatch } from './testing/fleet-fixture.js';

const FLEET = 1000;
const HOUR = 3600_000;
let dir: string;
let server: RunningServer;
let admin: AdminClient;
let fleet: FakeMachine[];

/** run `fn` over `items`, `width` at a time */
async function each<T>(items: T[], fn: (x: T) => Promise<unknown>, width = 50): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

/** the machines whose check-in offers `patchId` right now */
async function offeredTo(patchId: string): Promise<Set<string>> {
  const got = new Set<string>();
  await each(fleet, async (m) => {
    if ((await m.checkin()).offered.some((o) => o.patchId === patchId)) got.add(m.id);
  });
  return got;
}

const inBuckets = (below: number) =>
  new Set(fleet.filter((m) => rolloutBucket(m.id) < below).map((m) => m.id));
const later = (hours: number) => new Date(Date.now() + hours * HOUR).toISOString();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-waves-'));
  server = await startServer({
    dataDir: join(dir, 'data'),
    checkinIntervalSeconds: 30,
    offerTtlMs: 0,
    limits: { ...defaultLimits, enrollPerMinute: 10 * FLEET, checkinPerMinute: 1000 },
  });
  admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const token = await admin.createToken({ tier: 'canary' });
  fleet = Array.from({ length: FLEET }, (_, i) => new FakeMachine(server.url, `host-${i}`));
  await each(fleet, (m) => m.enroll(token.token));
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

test('three waves open in order over 1,000 machines', async () => {
  const w = await writePatch(dir, { name: 'meminfo' });
  const p = await admin.publish({
    module: w.module,
    manifest: w.manifestPath,
    tier: 'canary',
    rollout: { waves: [10, 50, 100], gateCheckins: 20, soakSeconds: 3600 },
  });
  assert.deepEqual(await offeredTo(p.id), inBuckets(10), 'wave 1 only: the machines of buckets 0..9');
  assert.deepEqual(await server.store.advanceRollouts(later(2)), [], 'no machine applied: the gate holds');

  const apply = async (ids: Set<string>) => {
    const machines = fleet.filter((m) => ids.has(m.id));
    await each(machines, (m) => m.report({ patchId: p.id, state: 'applied' }));
    await each(machines, (m) => m.checkin()); // healthy: a check-in after applying
  };
  await apply(inBuckets(10));
  assert.deepEqual(await server.store.advanceRollouts(later(2)), [
    { patchId: p.id, tier: 'canary', wave: 2 },
  ]);
  assert.deepEqual(await offeredTo(p.id), inBuckets(50), 'waves 1 and 2; a machine stays in its wave');

  const mid = await admin.rolloutStatus(p.id);
  const waves = mid[0]?.waves ?? [];
  assert.deepEqual(
    waves.map((x) => [x.percent, x.size, x.applied, x.healthy]),
    [
      [10, inBuckets(10).size, inBuckets(10).size, inBuckets(10).size],
      [50, inBuckets(50).size - inBuckets(10).size, 0, 0],
      [100, FLEET - inBuckets(50).size, 0, 0],
    ],
  );
  assert.ok(waves[1]?.openedAt && !waves[2]?.openedAt);

  await apply(new Set([...inBuckets(50)].filter((id) => !inBuckets(10).has(id))));
  assert.deepEqual(await server.store.advanceRollouts(later(4)), [
    { patchId: p.id, tier: 'canary', wave: 3 },
  ]);
  assert.equal((await offeredTo(p.id)).size, FLEET, 'wave 3 is the whole tier');
  const opened = (await admin.listAudit()).filter(
    (a) => a.action === 'rollout.wave-open' && a.target === p.id,
  );
  assert.deepEqual(opened.map((a) => a.detail.wave).sort(), [2, 3]);
});

test('a failure report in wave 1 stops waves 2 and 3', async () => {
  const w = await writePatch(dir, { name: 'uptime' });
  const p = await admin.publish({
    module: w.module,
    manifest: w.manifestPath,
    tier: 'canary',
    rollout: { waves: [10, 50, 100], gateCheckins: 5, soakSeconds: 3600 },
  });
  const wave1 = fleet.filter((m) => rolloutBucket(m.id) < 10);
  const [failing, ...healthy] = wave1;
  assert.ok(failing);
  await failing.report({ patchId: p.id, state: 'failed', reason: 'transition stalled: kworker/0:1' });
  await each(healthy, (m) => m.report({ patchId: p.id, state: 'applied' }));
  await each(healthy, (m) => m.checkin());
  assert.deepEqual(await server.store.advanceRollouts(later(2)), [], 'halted: wave 2 does not open');
  assert.deepEqual(await server.store.advanceRollouts(later(4)), [], 'nor wave 3');
  const got = await offeredTo(p.id);
  assert.deepEqual(got, new Set(healthy.map((m) => m.id)), 'only the machines that run it keep it');
  const [st] = await admin.rolloutStatus(p.id);
  assert.ok(st?.haltedAt, 'the rollout is halted');
  assert.equal(st?.wavesOpen, 1);
  assert.equal(st?.waves[0]?.failed, 1);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`^suture_patch_halted\\{patch="${p.id}",name="uptime",tier="canary"\\} 1$`, 'm'),
  );

  await admin.resume(p.id, 'canary');
  assert.deepEqual(await server.store.advanceRollouts(later(2)), [
    { patchId: p.id, tier: 'canary', wave: 2 },
  ]);
  assert.deepEqual(await offeredTo(p.id), inBuckets(50), 'resumed: the next wave opens');
  const actions = (await admin.listAudit()).filter((a) => a.target === p.id).map((a) => a.action);
  assert.ok(actions.includes('halt') && actions.includes('resume'));
});

test('a bad report halts the patch for the tier: the next machine never receives it', async () => {
  const token = await admin.createToken({ tier: 'stable' });
  const first = new FakeMachine(server.url, 'stable-1');
  const second = new FakeMachine(server.url, 'stable-2');
  await first.enroll(token.token);
  await second.enroll(token.token);
  const w = await writePatch(dir, { name: 'warn' });
  const p = await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' });
  await admin.promote(p.id, 'stable');
  assert.ok((await first.checkin()).offered.some((o) => o.patchId === p.id));
  await first.report({
    patchId: p.id,
    state: 'bad',
    reason: 'WARN after load',
    excerpt: 'WARNING: at x+0x10',
  });
  assert.ok(!(await second.checkin()).offered.some((o) => o.patchId === p.id), 'halted for stable');
  assert.ok(
    fleet[0] && (await fleet[0].checkin()).offered.some((o) => o.patchId === p.id),
    'canary is not halted',
  );
  assert.equal((await second.download(p.id)).status, 404, 'nor may it download it');
  await admin.revoke(p.id, 'bad on stable');
  assert.ok((await second.checkin()).revoked.some((r) => r.patchId === p.id));
});

/*
 * Several server instances on one PostgreSQL database, as behind a load balancer: each has its own
 * data directory (nothing shared on disk) and any request may reach any of them. The test plays the
 * balancer by sending each call to the instance it names:
 *   - the module is uploaded to A, the publish call reaches B (it finds the module in the database);
 *   - a machine enrolled through A checks in and downloads through B: the same bytes, and a signature
 *     that verifies with the key A gave at enrollment (one signing key, kept in the database);
 *   - a third instance started later, with an empty data directory, serves the module too, and a module
 *     whose cached copy was deleted is fetched from the database again;
 *   - promote, tier move and revoke made through one instance are what check-ins through the others see
 *     (each instance caches offers for 2 s — offer-cache.ts; the test turns that off to see it at once).
 * And on SQLite: a data directory from before the database held modules is migrated at start.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { verifyManifest } from '../manifest/signature.js';
import { AdminClient } from './admin-client.js';
import { type RunningServer, startServer } from './server.js';
import type { PatchRecord } from './store.js';
import { FakeMachine, writePatch } from './testing/fleet-fixture.js';
import { findPostgres, type PostgresCluster, startPostgres } from './testing/postgres-fixture.js';

const ADMIN = 'sut_admin_scale-out-test-token';

describe('two server instances on one PostgreSQL database', () => {
  let skip: string | undefined;
  let cluster: PostgresCluster | undefined;
  let dir: string;
  let database: string;
  const servers: RunningServer[] = [];
  const start = async (name: string) => {
    const s = await startServer({
      dataDir: join(dir, name),
      database,
      adminToken: ADMIN,
      offerTtlMs: 0,
    });
    servers.push(s);
    return s;
  };

  before(async () => {
    if (!findPostgres()) {
      skip = 'PostgreSQL is not installed (apt-get install postgresql); CI installs it';
      return;
    }
    cluster = await startPostgres();
    database = await cluster.createDatabase('scale_out');
    dir = await mkdtemp(join(tmpdir(), 'suture-scale-'));
  });
  after(async () => {
    for (const s of servers) await s.close();
    cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('upload to one, publish and serve from the others; one key; the database is the truth', async (t) => {
    if (skip) return t.skip(skip);
    const [a, b] = [await start('a'), await start('b')];
    assert.equal(a.publicKey, b.publicKey, 'both instances sign with the key kept in the database');
    const adminA = new AdminClient({ server: a.url, adminToken: ADMIN });
    const adminB = new AdminClient({ server: b.url, adminToken: ADMIN });

    const w = await writePatch(dir, { name: 'cmdline' });
    const bytes = await readFile(w.module);
    const sha = createHash('sha256').update(bytes).digest('hex');
    await adminA.call('PUT', `/admin/v1/artifacts/${sha}`, undefined, { data: bytes });
    const published = await adminB.call<PatchRecord>('POST', '/admin/v1/patches', {
      manifest: w.manifest,
      tier: 'canary',
    });

    const token = (await adminA.createToken({ tier: 'canary' })).token;
    const viaA = new FakeMachine(a.url, 'host-1');
    const enrolled = await viaA.enroll(token);
    assert.equal(enrolled.serverPublicKey, a.publicKey);
    const viaB = new FakeMachine(b.url, 'host-1');
    viaB.enrollment = enrolled;

    const offer = (await viaB.checkin()).offered[0];
    assert.equal(offer?.patchId, published.id);
    assert.ok(
      verifyManifest(offer.manifest, offer.signature, enrolled.serverPublicKey),
      'the offer from B verifies with the key A gave at enrollment',
    );
    const got = await viaB.download(published.id);
    assert.equal(got.status, 200);
    assert.deepEqual(got.bytes, bytes, 'B serves the module it never received');

    // a new instance with an empty data directory, and a deleted cache entry
    const c = await start('c');
    const viaC = new FakeMachine(c.url, 'host-1');
    viaC.enrollment = enrolled;
    assert.deepEqual((await viaC.download(published.id)).bytes, bytes);
    await rm(join(dir, 'a', 'artifacts', sha.slice(0, 2), sha));
    assert.deepEqual((await viaA.download(published.id)).bytes, bytes, 'A refetches what it lost');
    assert.deepEqual(
      await readFile(join(dir, 'a', 'artifacts', sha.slice(0, 2), sha)),
      bytes,
      'and caches it',
    );

    // a change made through one instance is what the next check-in through another sees
    await adminB.promote(published.id, 'stable');
    await adminA.setMachineTier(enrolled.machineId, 'stable');
    assert.equal((await viaC.checkin()).offered[0]?.patchId, published.id);
    await new AdminClient({ server: c.url, adminToken: ADMIN }).revoke(published.id, 'test');
    const after = await viaA.checkin();
    assert.deepEqual(after.offered, []);
    assert.deepEqual(
      after.revoked.map((r) => r.patchId),
      [published.id],
    );
  });

  test('a dashboard session opened on one instance works on the other, and logging out ends it on both', async (t) => {
    if (skip) return t.skip(skip);
    const [a, b] = [await start('sa'), await start('sb')];
    const form = (url: string, body: string, cookie = '') => ({
      method: 'POST',
      redirect: 'manual' as const,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: url,
        ...(cookie ? { cookie } : {}),
      },
      body,
    });
    const login = await fetch(`${a.url}/login`, form(a.url, `token=${encodeURIComponent(ADMIN)}`));
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = (s: RunningServer) => fetch(`${s.url}/`, { redirect: 'manual', headers: { cookie } });
    const onB = await page(b);
    assert.equal(onB.status, 200, 'the session is in the shared database');
    const csrf = /name="csrf" value="([^"]+)"/.exec(await onB.text())?.[1] ?? '';
    const out = await fetch(`${b.url}/logout`, form(b.url, `csrf=${encodeURIComponent(csrf)}`, cookie));
    assert.equal(out.status, 303);
    assert.equal((await page(a)).status, 302, 'logged out on b ends it on a');
  });

  test('a damaged module in the database is a server error, never bytes with the wrong hash', async (t) => {
    if (skip) return t.skip(skip);
    const [a] = servers;
    assert.ok(a);
    const admin = new AdminClient({ server: a.url, adminToken: ADMIN });
    const w = await writePatch(dir, { name: 'damaged' });
    const p = await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' });
    const token = (await admin.createToken({ tier: 'canary' })).token;
    const m = new FakeMachine(a.url, 'host-2');
    await m.enroll(token);
    await rm(join(dir, 'a', 'artifacts', p.sha256.slice(0, 2), p.sha256));
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    await client.query("UPDATE artifact_blobs SET data = 'garbage'::bytea WHERE sha256 = $1", [p.sha256]);
    await client.end();
    const res = await fetch(`${a.url}/v1/patches/${p.id}/module`, {
      headers: { authorization: `Bearer ${m.enrollment?.credential}` },
    });
    assert.equal(res.status, 500);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'ARTIFACT-CORRUPT');
  });
});

describe('a data directory from before the database held modules', () => {
  test('its cached modules are recorded in the database at start; a damaged one is dropped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'suture-migrate-'));
    try {
      const data = join(dir, 'data');
      const good = Buffer.from('a module cached by an older server');
      const goodSha = createHash('sha256').update(good).digest('hex');
      const bad = Buffer.from('bytes that do not match their name');
      const badSha = createHash('sha256').update('something else').digest('hex');
      for (const [sha, b] of [
        [goodSha, good],
        [badSha, bad],
      ] as const) {
        await mkdir(join(data, 'artifacts', sha.slice(0, 2)), { recursive: true });
        await writeFile(join(data, 'artifacts', sha.slice(0, 2), sha), b);
      }
      const s = await startServer({ dataDir: data, adminToken: ADMIN });
      try {
        assert.equal(await s.store.blobSize(goodSha), good.length);
        assert.deepEqual(await s.store.blobData(goodSha), good);
        assert.equal(await s.store.blobSize(badSha), undefined);
        await assert.rejects(readFile(join(data, 'artifacts', badSha.slice(0, 2), badSha)), {
          code: 'ENOENT',
        });
      } finally {
        await s.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

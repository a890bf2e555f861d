/*
 * Simulated end to end, no VM: a server on loopback (SQLite), two fake machines (canary + stable)
 * speaking the real protocol, the admin client the CLI uses. Publish to canary → only the canary
 * machine is offered it; promote to stable → both; revoke → both get it in the revoke list; a reported
 * failure shows on /metrics. Also: signatures verify with the key from enrollment, another build id
 * is never offered, a machine cannot download a patch not offered to it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { verifyManifest } from '../manifest/signature.js';
import { AdminClient } from './admin-client.js';
import { type RunningServer, startServer } from './server.js';
import { FakeMachine, OTHER_BUILD_ID, RELEASE, writePatch } from './testing/fleet-fixture.js';

let dir: string;
let server: RunningServer;
let admin: AdminClient;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-rollout-'));
  server = await startServer({ dataDir: join(dir, 'data'), checkinIntervalSeconds: 30 });
  assert.ok(server.createdAdminToken, 'first start creates the admin token');
  assert.equal((await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim(), server.createdAdminToken);
  admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken });
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

test('canary → stable → revoke, as two machines see it', async () => {
  const canaryToken = await admin.createToken({ tier: 'canary', note: 'canary hosts' });
  const stableToken = await admin.createToken({ tier: 'stable' });
  const canary = new FakeMachine(server.url, 'canary-1');
  const stable = new FakeMachine(server.url, 'stable-1');
  const other = new FakeMachine(server.url, 'other-build', { release: RELEASE, buildId: OTHER_BUILD_ID });
  const e1 = await canary.enroll(canaryToken.token);
  await stable.enroll(stableToken.token);
  await other.enroll(canaryToken.token);
  assert.equal(e1.tier, 'canary');
  assert.equal(stable.enrollment?.tier, 'stable');
  assert.equal(e1.serverPublicKey, server.publicKey);
  assert.notEqual(canary.enrollment?.credential, stable.enrollment?.credential);

  // nothing published yet
  assert.deepEqual((await canary.checkin()).offered, []);

  const w = await writePatch(dir, { name: 'cmdline', cves: ['CVE-2026-0001'] });
  const p = await admin.publish({
    module: w.module,
    manifest: w.manifestPath,
    tier: 'canary',
    cves: ['CVE-2026-0002'],
    description: 'blog cmdline demo',
  });
  assert.deepEqual(p.tiers, ['canary']);
  assert.deepEqual(p.cves, ['CVE-2026-0001', 'CVE-2026-0002']);

  const c1 = await canary.checkin();
  assert.equal(c1.nextCheckinSeconds, 30);
  assert.equal(c1.offered.length, 1);
  const offer = c1.offered[0];
  assert.ok(offer);
  assert.equal(offer.patchId, p.id);
  assert.equal(offer.manifest.kernel.buildId, canary.kernel.buildId);
  assert.deepEqual(
    offer.manifest.cves,
    ['CVE-2026-0001', 'CVE-2026-0002'],
    'CVEs are part of the signed manifest',
  );
  assert.equal(offer.sha256, createHash('sha256').update(w.bytes).digest('hex'));
  assert.ok(
    verifyManifest(offer.manifest, offer.signature, e1.serverPublicKey),
    'signature verifies with the enrollment key',
  );
  assert.equal(
    verifyManifest({ ...offer.manifest, version: '2' }, offer.signature, e1.serverPublicKey),
    false,
  );
  const dl = await canary.download(offer.patchId);
  assert.equal(dl.status, 200);
  assert.ok(dl.bytes.equals(w.bytes), 'the module downloads byte for byte');

  assert.deepEqual((await stable.checkin()).offered, [], 'stable does not see a canary patch');
  assert.equal((await stable.download(p.id)).status, 404, 'nor can it download it');
  assert.deepEqual((await other.checkin()).offered, [], 'another build id is never offered');
  assert.equal((await other.download(p.id)).status, 404);

  await canary.report({ patchId: p.id, state: 'applied' });
  await admin.promote(p.id, 'stable');
  const s1 = await stable.checkin();
  assert.deepEqual(
    s1.offered.map((o) => o.patchId),
    [p.id],
  );
  assert.equal((await canary.checkin()).offered[0]?.patchId, p.id, 'canary still has it');
  await stable.report({ patchId: p.id, state: 'failed', reason: 'insmod: Unknown symbol in module' });

  // a newer cumulative patch comes first
  const w2 = await writePatch(dir, { name: 'cmdline', version: '2' });
  const p2 = await admin.publish({ module: w2.module, manifest: w2.manifestPath, tier: 'canary' });
  assert.deepEqual(
    (await canary.checkin()).offered.map((o) => o.patchId),
    [p2.id, p.id],
  );

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`suture_patch_apply_failures_total\\{patch="${p.id}",name="cmdline"\\} 1`),
  );
  assert.match(metrics, /suture_machines\{tier="stable",state="failed"\} 1/);
  assert.match(metrics, /suture_machines\{tier="canary",state="applied"\} 1/);
  assert.match(
    metrics,
    new RegExp(`suture_patch_rollout_ratio\\{patch="${p.id}",name="cmdline",tier="canary"\\} 1`),
  );
  assert.match(metrics, /suture_machine_checkins_total \d+/);

  await admin.revoke(p.id, 'breaks /proc/cmdline readers');
  const c2 = await canary.checkin();
  const s2 = await stable.checkin();
  assert.deepEqual(
    c2.offered.map((o) => o.patchId),
    [p2.id],
  );
  assert.deepEqual(s2.offered, []);
  for (const r of [c2, s2]) {
    assert.deepEqual(r.revoked, [{ patchId: p.id, name: 'cmdline', moduleName: 'livepatch_cmdline' }]);
  }
  assert.equal((await canary.download(p.id)).status, 404, 'a revoked module is not served');
  assert.deepEqual((await other.checkin()).revoked, [], 'other kernels are not told to revert it');

  // a machine rebooted into the patched kernel build is offered that kernel's patches at once
  other.kernel.buildId = canary.kernel.buildId;
  const rebooted = await other.checkin();
  assert.deepEqual(
    rebooted.offered.map((o) => o.patchId),
    [p2.id],
  );
  assert.equal((await admin.getMachine(other.id)).buildId, canary.kernel.buildId);

  const audit = await admin.listAudit();
  assert.deepEqual(audit.map((a) => a.action).reverse(), [
    'token.create',
    'token.create',
    'publish',
    'promote',
    'publish',
    'revoke',
  ]);
  const kernels = await admin.listKernels();
  const k = kernels.find((x) => x.buildId === canary.kernel.buildId);
  assert.deepEqual(k && { patches: k.patches, active: k.activePatches, machines: k.machines }, {
    patches: 2,
    active: 1,
    machines: 3,
  });
  const m = await admin.getMachine(stable.id);
  assert.equal(m.patches[0]?.state, 'failed');
  assert.equal(m.patches[0]?.reason, 'insmod: Unknown symbol in module');
});

test('publishing the same manifest twice is refused, and an unknown patch cannot be promoted', async () => {
  const w = await writePatch(dir, { name: 'twice' });
  await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' });
  await assert.rejects(admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' }), {
    code: 'PATCH-EXISTS',
  });
  await assert.rejects(admin.promote('0000000000000000', 'stable'), { code: 'PATCH-UNKNOWN' });
  await assert.rejects(new AdminClient({ server: server.url, adminToken: 'sut_admin_wrong' }).listPatches(), {
    code: 'AUTH-INVALID',
  });
});

/*
 * The operator's commands — `suture token create/revoke`, `publish`, `promote`, `revoke`, `machines`
 * (with --disable/--enable), `kernels`, `audit`, `admin rotate-token`, `rollout status|halt`, `resume` — parsed by commander exactly as the CLI does (only these commands are registered, so the
 * test does not depend on other stages), against a real server on loopback.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KernelSummary, MachineRecord, PatchRecord } from '../../server/store.js';
import { FakeMachine, writePatch } from '../../server/testing/fleet-fixture.js';
import { AdminCliRig } from '../testing/admin-cli.js';
import { register as registerAdmin } from './admin.js';
import { register as registerAudit } from './audit.js';
import { register as registerKernels } from './kernels.js';
import { register as registerMachines } from './machines.js';
import { register as registerPromote } from './promote.js';
import { register as registerPublish } from './publish.js';
import { register as registerResume } from './resume.js';
import { register as registerRevoke } from './revoke.js';
import { register as registerRollout } from './rollout.js';
import { register as registerToken } from './token.js';

const rig = new AdminCliRig('cli', [
  registerToken,
  registerPublish,
  registerPromote,
  registerRevoke,
  registerMachines,
  registerKernels,
  registerAudit,
  registerAdmin,
  registerRollout,
  registerResume,
]);
const suture = rig.suture;

test('token, publish, promote, machines, kernels, revoke from the command line', async () => {
  const token = (await suture('token', 'create', '--tier', 'canary', '--max-uses', '2')).trim();
  assert.match(token, /^sut_enroll_[A-Za-z0-9_-]{43}$/);
  const m = new FakeMachine(rig.server.url, 'cli-host');
  await m.enroll(token);

  const w = await writePatch(rig.dir, { name: 'meminfo' });
  const published = JSON.parse(
    await suture(
      'publish',
      w.module,
      '--manifest',
      w.manifestPath,
      '--tier',
      'canary',
      '--cve',
      'CVE-2026-1111',
      '--cve',
      'CVE-2026-2222',
      '--description',
      'VmallocChunk',
      '--json',
    ),
  ) as PatchRecord;
  assert.deepEqual(published.cves, ['CVE-2026-1111', 'CVE-2026-2222']);
  assert.equal(published.description, 'VmallocChunk');
  assert.equal((await m.checkin()).offered[0]?.patchId, published.id);

  // by name, and by id prefix
  assert.match(await suture('promote', 'meminfo', '--tier', 'stable'), /tiers canary, stable/);
  assert.match(
    await suture('promote', published.id.slice(0, 6), '--tier', 'gold'),
    /tiers canary, gold, stable/,
  );

  const machines = JSON.parse(await suture('machines', '--json')) as MachineRecord[];
  assert.deepEqual(
    machines.map((x) => [x.hostname, x.tier]),
    [['cli-host', 'canary']],
  );
  assert.match(await suture('machines', m.id), /cli-host .* tier canary/);
  // moved to a tier the patch is not in: no longer offered; back to canary: offered again
  assert.match(await suture('machines', m.id, '--set-tier', 'edge'), /cli-host .* tier edge/);
  assert.deepEqual((await m.checkin()).offered, []);
  await suture('machines', m.id, '--set-tier', 'canary');
  assert.equal((await m.checkin()).offered[0]?.patchId, published.id);
  await assert.rejects(suture('machines', '--set-tier', 'edge'), { code: 'CLI-USAGE' });
  await assert.rejects(suture('machines', 'm_nosuch', '--set-tier', 'edge'), { code: 'MACHINE-UNKNOWN' });
  const kernels = JSON.parse(await suture('kernels', '--json')) as KernelSummary[];
  assert.deepEqual(
    kernels.map((k) => [k.buildId, k.patches, k.machines]),
    [[m.kernel.buildId, 1, 1]],
  );
  assert.match(await suture('kernels', '--patches'), /meminfo\s+1\s+6\.1\.0-53-cloud-amd64/);
  assert.match(await suture('token', 'list'), /canary\s+1\/2/);

  assert.match(await suture('revoke', published.id, '--reason', 'test'), /revoked at/);
  assert.deepEqual(
    (await m.checkin()).revoked.map((r) => r.patchId),
    [published.id],
  );
  await assert.rejects(suture('promote', 'nosuchpatch', '--tier', 'stable'), { code: 'PATCH-UNKNOWN' });

  // every change above left one audit entry, newest first; the failed promote left none
  const audit = JSON.parse(await suture('audit', '--json')) as Array<{ action: string; target: string }>;
  assert.deepEqual(
    audit.map((a) => a.action),
    ['revoke', 'machine.tier', 'machine.tier', 'promote', 'promote', 'publish', 'token.create'],
  );
  assert.deepEqual(audit.map((a) => a.target).slice(0, 6), [
    published.id,
    m.id,
    m.id,
    published.id,
    published.id,
    published.id,
  ]);
  assert.match(await suture('audit'), /^\S+\s+admin@\S+\s+promote\s+\S+\s+tier=gold$/m);
});

test('incident response from the command line: token revoke, machines --disable, admin rotate-token', async () => {
  // (the test runner may write its own events to stdout while it is captured: match, do not trim)
  const token =
    /sut_enroll_[A-Za-z0-9_-]{43}/.exec(await suture('token', 'create', '--tier', 'canary'))?.[0] ?? '';
  assert.match(
    rig.lastStderr,
    /unlimited uses \(default; --max-uses N\), never expires \(default; --expires-in-hours H\)/,
  );
  const id =
    (JSON.parse(await suture('token', 'list', '--json')) as Array<{ id: string; revokedAt?: string }>).at(-1)
      ?.id ?? '';
  const m = new FakeMachine(rig.server.url, 'incident-host');
  await m.enroll(token);
  assert.match(await suture('token', 'revoke', id), new RegExp(`token ${id} \\(tier canary\\) revoked`));
  await assert.rejects(new FakeMachine(rig.server.url, 'late').enroll(token), /403/);

  assert.match(
    await suture('machines', m.id, '--disable', '--reason', 'stolen'),
    /credential DISABLED since/,
  );
  await assert.rejects(m.checkin(), /403/);
  assert.doesNotMatch(await suture('machines', m.id, '--enable'), /DISABLED/);
  await m.checkin();
  await assert.rejects(
    suture('machines', '--disable'),
    (e: Error & { code?: string }) => e.code === 'CLI-USAGE',
  );

  const old = rig.server.createdAdminToken ?? '';
  const fresh = /sut_admin_[A-Za-z0-9_-]{43}/.exec(await suture('admin', 'rotate-token'))?.[0] ?? '';
  assert.ok(fresh, 'the new admin token is printed');
  await new Promise((r) => setTimeout(r, 1100)); // the server caches the admin token hash for a second
  await assert.rejects(suture('kernels'), (e: Error & { code?: string }) => e.code === 'AUTH-INVALID');
  rig.server.createdAdminToken = fresh;
  const auditText = await suture('audit');
  for (const a of ['token.revoke', 'machine.disable', 'machine.enable', 'admin.rotate-token'])
    assert.ok(auditText.includes(a), a);
  assert.notEqual(fresh, old);
});

test('publish --waves, rollout status, rollout halt, resume from the command line', async () => {
  const w = await writePatch(rig.dir, { name: 'uptime' });
  const args = ['publish', w.module, '--manifest', w.manifestPath, '--tier', 'canary'];
  await assert.rejects(suture(...args, '--waves', '10,x,100'), { code: 'CLI-ROLLOUT-OPTION' });
  await assert.rejects(suture(...args, '--waves', '10,50', '--soak', 'soon'), { code: 'CLI-ROLLOUT-OPTION' });
  await assert.rejects(suture(...args, '--waves', '50,10,100'), { code: 'REQUEST-INVALID' });
  const p = JSON.parse(
    await suture(...args, '--waves', '10,50,100', '--gate-checkins', '2', '--soak', '1h', '--json'),
  ) as PatchRecord;
  const status = JSON.parse(await suture('rollout', 'status', p.id, '--json')) as Array<{
    tier: string;
    plan: { waves: number[]; gateCheckins: number; soakSeconds: number };
    wavesOpen: number;
  }>;
  assert.deepEqual(
    status.map((t) => [t.tier, t.plan, t.wavesOpen]),
    [['canary', { waves: [10, 50, 100], gateCheckins: 2, soakSeconds: 3600 }, 1]],
  );
  const text = await suture('rollout', 'status', 'uptime');
  assert.match(text, /canary\s+1\/3\s+10%\s+open/);
  assert.match(text, /canary\s+3\/3\s+100%\s+waiting/);
  assert.match(
    await suture('rollout', 'halt', p.id, '--tier', 'canary', '--reason', 'oops on web-3'),
    /HALTED in canary .*oops on web-3/,
  );
  assert.doesNotMatch(await suture('resume', p.id, '--tier', 'canary'), /HALTED/);
  await assert.rejects(suture('resume', p.id, '--tier', 'gold'), { code: 'PATCH-TIER-UNKNOWN' });
});

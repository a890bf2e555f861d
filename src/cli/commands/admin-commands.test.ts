/*
 * The operator's commands — `suture token create`, `publish`, `promote`, `revoke`, `machines`,
 * `kernels`, `audit` — parsed by commander exactly as the CLI does (only these commands are registered, so the
 * test does not depend on other stages), against a real server on loopback.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { type RunningServer, startServer } from '../../server/server.js';
import type { KernelSummary, MachineRecord, PatchRecord } from '../../server/store.js';
import { FakeMachine, writePatch } from '../../server/testing/fleet-fixture.js';
import { register as registerAudit } from './audit.js';
import { register as registerKernels } from './kernels.js';
import { register as registerMachines } from './machines.js';
import { register as registerPromote } from './promote.js';
import { register as registerPublish } from './publish.js';
import { register as registerRevoke } from './revoke.js';
import { register as registerToken } from './token.js';

let dir: string;
let server: RunningServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-cli-'));
  server = await startServer({ dataDir: join(dir, 'data') });
});
after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Run `suture ARGS…` with only the admin commands; returns what it printed on stdout. */
async function suture(...args: string[]): Promise<string> {
  const program = new Command('suture').exitOverride();
  for (const r of [
    registerToken,
    registerPublish,
    registerPromote,
    registerRevoke,
    registerMachines,
    registerKernels,
    registerAudit,
  ]) {
    r(program);
  }
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => out.push(String(s)) > 0) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync([
      'node',
      'suture',
      ...args,
      '--server',
      server.url,
      '--admin-token',
      server.createdAdminToken ?? '',
    ]);
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
  return out.join('');
}

test('token, publish, promote, machines, kernels, revoke from the command line', async () => {
  const token = (await suture('token', 'create', '--tier', 'canary', '--max-uses', '2')).trim();
  assert.match(token, /^sut_enroll_[A-Za-z0-9_-]{43}$/);
  const m = new FakeMachine(server.url, 'cli-host');
  await m.enroll(token);

  const w = await writePatch(dir, { name: 'meminfo' });
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

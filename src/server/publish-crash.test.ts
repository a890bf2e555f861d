/*
 * Server killed (SIGKILL) mid-publish → no half-published patch.
 *
 * The server runs as a child process. We kill it (1) while a module upload is streaming (the temp
 * file exists), (2) between the upload and the publish call, and (3) at several moments right after the
 * publish call was sent. After each crash no blob exists under a name it does not hash to (a temp file
 * may, and is gone after the restart), and every patch row is complete (tier row, audit entry, blob present) — or absent.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdminClient } from './admin-client.js';
import { openStore } from './store.js';
import { writePatch } from './testing/fleet-fixture.js';

const ADMIN = 'test-admin-token-0123456789';
let dir: string;
let child: ChildProcess | undefined;

after(async () => {
  child?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startChild(data: string): Promise<string> {
  const script = `
    const { startServer } = await import(${JSON.stringify(new URL('./server.js', import.meta.url).href)});
    const s = await startServer({ dataDir: ${JSON.stringify(data)}, adminToken: ${JSON.stringify(ADMIN)} });
    process.stdout.write(s.url + '\\n');`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child = c;
  return new Promise((resolve, reject) => {
    let out = '';
    c.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(http:\/\/\S+)\n/m.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    c.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
}

async function kill(): Promise<void> {
  const c = child;
  if (!c || c.exitCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await exited;
}

async function files(root: string): Promise<string[]> {
  try {
    return (await readdir(root, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

/** The invariant after any crash: nothing half-done. */
async function assertConsistent(data: string): Promise<{ patches: number }> {
  const arts = join(data, 'artifacts');
  // a killed upload may leave a temp file (removed at the next start); never a blob under a wrong name
  for (const f of (await files(arts)).filter((x) => !x.startsWith(join(arts, 'tmp')))) {
    const name = f.split('/').pop() ?? '';
    assert.equal(
      createHash('sha256')
        .update(await readFile(f))
        .digest('hex'),
      name,
      `blob ${name} is complete`,
    );
  }
  const store = await openStore(join(data, 'suture.db'));
  try {
    const dump = await store.dump();
    const audit = dump.audit as Array<{ action: string; target: string }>;
    const tiers = dump.patch_tiers as Array<{ patch_id: string }>;
    for (const p of dump.patches as Array<{ id: string; sha256: string }>) {
      assert.ok(
        tiers.some((t) => t.patch_id === p.id),
        `patch ${p.id} has its tier`,
      );
      assert.ok(
        audit.some((a) => a.action === 'publish' && a.target === p.id),
        `patch ${p.id} has its audit entry`,
      );
      assert.ok(
        (await files(arts)).some((f) => f.endsWith(p.sha256)),
        `patch ${p.id} has its module`,
      );
    }
    return { patches: dump.patches?.length ?? 0 };
  } finally {
    await store.close();
  }
}

test('a server killed at any point of a publish leaves no half-published patch', async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-crash-'));
  const data = join(dir, 'data');
  let url = await startChild(data);

  // (1) killed while the module streams in
  const big = randomBytes(4 * 1024 * 1024);
  const sha = createHash('sha256').update(big).digest('hex');
  const req = request(`${url}/admin/v1/artifacts/${sha}`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${ADMIN}`,
      'content-type': 'application/octet-stream',
      'content-length': big.length,
    },
  });
  req.on('error', () => {});
  req.write(big.subarray(0, 1024 * 1024));
  for (let i = 0; i < 100 && (await files(join(data, 'artifacts', 'tmp'))).length === 0; i++) await sleep(50);
  assert.equal((await files(join(data, 'artifacts', 'tmp'))).length, 1, 'the upload is in flight');
  await kill();
  req.destroy();
  assert.deepEqual(await assertConsistent(data), { patches: 0 });
  url = await startChild(data);
  assert.deepEqual(await files(join(data, 'artifacts', 'tmp')), [], 'restart removed the partial upload');

  // (2) killed after the upload, before the publish call: a blob, no patch; publishing later works
  const w = await writePatch(dir, { name: 'cmdline' });
  let admin = new AdminClient({ server: url, adminToken: ADMIN });
  await admin.call('PUT', `/admin/v1/artifacts/${w.manifest.module.sha256}`, undefined, { data: w.bytes });
  await kill();
  assert.deepEqual(await assertConsistent(data), { patches: 0 });
  url = await startChild(data);
  admin = new AdminClient({ server: url, adminToken: ADMIN });
  assert.equal(
    (await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' })).name,
    'cmdline',
  );
  assert.deepEqual(await assertConsistent(data), { patches: 1 });

  // (3) killed at various moments after the publish call was sent
  for (const delayMs of [0, 1, 2, 5, 10, 20]) {
    const v = await writePatch(dir, { name: 'meminfo', version: String(delayMs) });
    await admin.call('PUT', `/admin/v1/artifacts/${v.manifest.module.sha256}`, undefined, { data: v.bytes });
    const pending = admin.call('POST', '/admin/v1/patches', { manifest: v.manifest, tier: 'canary' }).then(
      () => 'published',
      () => 'interrupted',
    );
    await sleep(delayMs);
    await kill();
    await pending;
    await assertConsistent(data);
    url = await startChild(data);
    assert.deepEqual(await files(join(data, 'artifacts', 'tmp')), []);
    admin = new AdminClient({ server: url, adminToken: ADMIN });
  }
  await kill();
});

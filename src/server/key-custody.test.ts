/*
 * Key custody (issue #12, defect 3): the data directory is 0700 and the database files 0600 whatever
 * existed before; the signing key can live outside the database (`--signing-key FILE`, created 0600,
 * taking over a key the database held); a key file its group or others may read is refused at start
 * with the fix in the hint; a rotation with a key file survives a restart.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { privateKeyFromPem, publicKeyToBase64 } from '../manifest/signature.js';
import { type RunningServer, startServer } from './server.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'suture-custody-'));
  dirs.push(d);
  return d;
}

const mode = (p: string) => statSync(p).mode & 0o777;

async function start(dataDir: string, signingKeyFile?: string): Promise<RunningServer> {
  return startServer({
    dataDir,
    port: 0,
    adminToken: 'admin-token-for-custody-tests',
    ...(signingKeyFile ? { signingKeyFile } : {}),
  });
}

async function admin<T>(s: RunningServer, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: {
      authorization: 'Bearer admin-token-for-custody-tests',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as T;
}

test('a pre-existing 0755 data directory is made 0700, the database files 0600', async () => {
  const data = join(scratch(), 'state');
  mkdirSync(data, { mode: 0o755 });
  chmodSync(data, 0o755);
  const s = await start(data);
  try {
    assert.equal(mode(data), 0o700);
    for (const f of ['suture.db', 'suture.db-wal', 'suture.db-shm']) {
      const p = join(data, f);
      if (existsSync(p)) assert.equal(mode(p), 0o600, f);
    }
    assert.ok(existsSync(join(data, 'suture.db')));
  } finally {
    await s.close();
  }
  chmodSync(join(data, 'suture.db'), 0o644);
  writeFileSync(join(data, 'admin-token'), 'x\n', { mode: 0o644 });
  chmodSync(join(data, 'admin-token'), 0o644);
  chmodSync(data, 0o755);
  const again = await start(data);
  await again.close();
  assert.equal(mode(data), 0o700, 'tightened again at the next start');
  assert.equal(mode(join(data, 'suture.db')), 0o600);
  assert.equal(mode(join(data, 'admin-token')), 0o600);
});

test('--signing-key FILE: created 0600, takes over the key the database held, which then holds none', async () => {
  const root = scratch();
  const data = join(root, 'data');
  const first = await start(data);
  const inDb = first.publicKey;
  assert.ok(await first.store.getSetting('signing_key_pem'));
  await first.close();

  const file = join(root, 'keys', 'signing.pem');
  mkdirSync(join(root, 'keys'), { mode: 0o700 });
  const s = await start(data, file);
  try {
    assert.equal(mode(file), 0o600);
    assert.equal(s.publicKey, inDb, 'the same key, now outside the database');
    assert.equal(publicKeyToBase64(privateKeyFromPem(readFileSync(file, 'utf8')).publicKey), inDb);
    assert.equal(await s.store.getSetting('signing_key_pem'), undefined, 'no longer in the database');
    const info = await admin<{ custody: string; publicKey: string }>(s, 'GET', '/admin/v1/key');
    assert.equal(info.custody, file);
  } finally {
    await s.close();
  }
});

test('a signing key file readable by group or others is refused at start, with the chmod in the hint', async () => {
  const root = scratch();
  const file = join(root, 'signing.pem');
  const s = await start(join(root, 'data'), file);
  await s.close();
  chmodSync(file, 0o640);
  await assert.rejects(start(join(root, 'data'), file), (e: unknown) => {
    assert.ok(isSutureError(e));
    assert.equal(e.diagnostic.code, 'SERVER-KEY-PERMISSIONS');
    assert.match(e.diagnostic.hint ?? '', new RegExp(`chmod 600 ${file}`));
    return true;
  });
  chmodSync(file, 0o600);
  const ok = await start(join(root, 'data'), file);
  await ok.close();
});

test('rotation with a key file: announced under the old key, audited, and kept across a restart', async () => {
  const root = scratch();
  const file = join(root, 'signing.pem');
  const s = await start(join(root, 'data'), file);
  const before = s.publicKey;
  const r = await admin<{ previous: string; publicKey: string }>(s, 'POST', '/admin/v1/key/rotate', {});
  assert.equal(r.previous, before);
  assert.notEqual(r.publicKey, before);
  assert.equal(s.publicKey, r.publicKey);
  const audit = await s.store.listAudit();
  assert.deepEqual(
    audit.filter((a) => a.action === 'key-rotate').map((a) => a.detail.custody),
    [file],
  );
  await s.close();
  assert.ok(!existsSync(`${file}.next`));
  assert.equal(mode(file), 0o600);
  const again = await start(join(root, 'data'), file);
  try {
    assert.equal(again.publicKey, r.publicKey, 'the new key after a restart');
    const info = await admin<{ rotations: number }>(again, 'GET', '/admin/v1/key');
    assert.equal(info.rotations, 1);
  } finally {
    await again.close();
  }
});

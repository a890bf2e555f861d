/*
 * Suture's own apt index of a suite: a local archive signed with a throw-away key stands in for
 * Debian's. Signed by the key the index trusts, it is published and apt answers from it; signed by
 * another key (the wrong keyring) or tampered after signing, it is refused with APT-INDEX-UNVERIFIED
 * and nothing of it stays in the cache. The host's sources.list plays no part.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { aptMadison } from './apt.js';
import { DEBIAN_KEYRING, debianSources, ensureIndex, hostCodename, type SuiteSources } from './suites.js';

const work = mkdtempSync(join(tmpdir(), 'suture-suites-'));
after(() => rmSync(work, { recursive: true, force: true }));
const gnupg = join(work, 'gnupg');
mkdirSync(gnupg, { mode: 0o700 });

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, GNUPGHOME: gnupg } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const PKG = 'linux-image-6.12.117+deb13-cloud-amd64-unsigned';
run('gpg', [
  '--batch',
  '--passphrase',
  '',
  '--quick-gen-key',
  'Suture Test <t@example.org>',
  'ed25519',
  'sign',
  'never',
]);
const keyring = join(work, 'test-key.gpg');
writeFileSync(keyring, spawnSync('gpg', ['--export'], { env: { ...process.env, GNUPGHOME: gnupg } }).stdout);

/** A one-package archive at `dir`, dist `test`, its InRelease signed with the test key. */
function archive(dir: string, version: string): void {
  const dists = join(dir, 'dists', 'test');
  mkdirSync(join(dists, 'main', 'binary-amd64'), { recursive: true });
  const rel = 'main/binary-amd64/Packages';
  writeFileSync(
    join(dists, rel),
    `Package: ${PKG}\nVersion: ${version}\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 10\nSHA256: ${'0'.repeat(64)}\nDescription: fake\n\n`,
  );
  const sha = createHash('sha256')
    .update(readFileSync(join(dists, rel)))
    .digest('hex');
  writeFileSync(
    join(dists, 'Release'),
    `Suite: test\nCodename: test\nDate: ${new Date().toUTCString()}\nArchitectures: amd64\nComponents: main\nSHA256:\n ${sha} ${statSync(join(dists, rel)).size} ${rel}\n`,
  );
  rmSync(join(dists, 'InRelease'), { force: true });
  run('gpg', ['--batch', '--clearsign', '-o', 'InRelease', 'Release'], dists);
}

const sources = (dir: string, key: string): SuiteSources => ({
  suite: 'test',
  keyring: key,
  lines: [{ uri: `file://${dir}`, dist: 'test' }],
});

const unverified = (e: unknown) => (e as SutureError).code === 'APT-INDEX-UNVERIFIED';
const nothingKept = (base: string) =>
  !existsSync(base) || readdirSync(base).every((f) => !f.startsWith('index.@') && f !== 'current');

test('an index signed by the trusted key is published and apt answers from it alone', async () => {
  const repo = join(work, 'good');
  archive(repo, '6.12.117-1');
  const base = join(work, 'cache-good', 'apt', 'test');
  const ctx = await ensureIndex(sources(repo, keyring), base, { root: join(work, 'cache-good') });
  assert.ok(existsSync(join(base, 'current', 'lists')));
  const v = aptMadison([PKG], ctx);
  assert.deepEqual(
    v.map((x) => x.version),
    ['6.12.117-1'],
  );
  assert.match(
    v[0]?.origin ?? '',
    /^file:/,
    'the answer comes from the local archive, not the host’s sources',
  );
  // a second call uses the published index (no new download): same directory
  const again = await ensureIndex(sources(repo, keyring), base, { root: join(work, 'cache-good') });
  assert.deepEqual(again.options, ctx.options);
  // a refresh replaces it atomically and leaves one index
  archive(repo, '6.12.118-1');
  const fresh = await ensureIndex(sources(repo, keyring), base, {
    refresh: true,
    root: join(work, 'cache-good'),
  });
  assert.deepEqual(
    aptMadison([PKG], fresh).map((x) => x.version),
    ['6.12.118-1'],
  );
  assert.equal(readdirSync(base).filter((f) => f.startsWith('index.@')).length, 1);
});

test('an index signed by a key the keyring lacks is refused and nothing is cached', async () => {
  const repo = join(work, 'wrongkey');
  archive(repo, '6.12.117-1');
  const root = join(work, 'cache-wrong');
  const base = join(root, 'apt', 'test');
  await assert.rejects(ensureIndex(sources(repo, DEBIAN_KEYRING), base, { root }), (e: unknown) => {
    assert.ok(unverified(e), String(e));
    assert.ok((e as SutureError).diagnostic.detail?.some((l) => /NO_PUBKEY|not signed/.test(l)));
    return true;
  });
  assert.ok(nothingKept(base), readdirSync(base).join(' '));
});

test('a tampered InRelease (changed after signing) is refused and nothing is cached', async () => {
  const repo = join(work, 'tampered');
  archive(repo, '6.12.117-1');
  const inRelease = join(repo, 'dists', 'test', 'InRelease');
  writeFileSync(inRelease, readFileSync(inRelease, 'utf8').replace('Codename: test', 'Codename: evil'));
  const root = join(work, 'cache-tampered');
  const base = join(root, 'apt', 'test');
  await assert.rejects(ensureIndex(sources(repo, keyring), base, { root }), unverified);
  assert.ok(nothingKept(base));
});

test('a published index survives a failed refresh untouched', async () => {
  const repo = join(work, 'refresh');
  archive(repo, '6.12.117-1');
  const root = join(work, 'cache-refresh');
  const base = join(root, 'apt', 'test');
  const ctx = await ensureIndex(sources(repo, keyring), base, { root });
  const inRelease = join(repo, 'dists', 'test', 'InRelease');
  writeFileSync(inRelease, readFileSync(inRelease, 'utf8').replace('Suite: test', 'Suite: evil'));
  await assert.rejects(ensureIndex(sources(repo, keyring), base, { refresh: true, root }), unverified);
  assert.deepEqual(
    aptMadison([PKG], ctx).map((x) => x.version),
    ['6.12.117-1'],
  );
});

test("Debian's own sources of a suite: release, updates and security, signed by the archive keyring", () => {
  const s = debianSources('trixie');
  assert.equal(s.keyring, '/usr/share/keyrings/debian-archive-keyring.gpg');
  assert.deepEqual(
    s.lines.map((l) => l.dist),
    ['trixie', 'trixie-updates', 'trixie-security'],
  );
  const osr = join(work, 'os-release');
  writeFileSync(osr, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n');
  assert.equal(hostCodename(osr), 'bookworm');
  assert.equal(hostCodename(join(work, 'absent')), undefined);
});

/*
 * The build root's cache states, with a stand-in for debootstrap (the real one is exercised by the
 * trixie fetch test): absent → built once and published with its record; present → reused without
 * building; a build that fails half way → nothing published, the next call builds it again; a builder
 * killed half way (a real SIGKILL of another process) → its leftovers are removed and the root redone;
 * a root whose compiler does not answer is never published.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SutureError } from '../diagnostic.js';
import {
  type Bootstrapper,
  cachedBuildRoot,
  ensureBuildRoot,
  type RootSpec,
  readRootRecord,
  rootEntryName,
  rootPackages,
} from './build-root.js';
import { parseCompilerText } from './compiler.js';

const work = mkdtempSync(join(tmpdir(), 'suture-buildroot-'));
after(() => rmSync(work, { recursive: true, force: true }));

const GCC = 'gcc (Debian 14.2.0-19) 14.2.0';
const spec: RootSpec = {
  suite: 'trixie',
  packages: rootPackages(14),
  mirror: 'http://deb.debian.org/debian',
};
const probe = (dir: string) =>
  existsSync(join(dir, 'usr/bin/gcc'))
    ? parseCompilerText(readFileSync(join(dir, 'usr/bin/gcc'), 'utf8'))
    : undefined;

/** A bootstrapper that writes a fake root (a "gcc" file holding its version line) and counts its runs. */
function fake(): { boot: Bootstrapper; runs: () => number } {
  let n = 0;
  return {
    boot: async (_s, dir) => {
      n++;
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(dir, 'usr/bin'), { recursive: true });
      writeFileSync(join(dir, 'usr/bin/gcc'), GCC);
    },
    runs: () => n,
  };
}

test('the content address depends on recipe inputs, not on package order', () => {
  const a = rootEntryName(spec);
  assert.match(a, /^root-trixie-[0-9a-f]{24}$/);
  assert.equal(rootEntryName({ ...spec, packages: [...spec.packages].reverse() }), a);
  assert.notEqual(rootEntryName({ ...spec, packages: rootPackages(12) }), a);
  assert.notEqual(rootEntryName({ ...spec, suite: 'bookworm' }), a);
  assert.notEqual(rootEntryName({ ...spec, compiler: '(Debian 14.2.0-23) 14.2.0' }), a);
  assert.ok(rootPackages(14).includes('gcc-14') && rootPackages(14).includes('libelf-dev'));
});

test('absent: built once and published with its record; present: reused without building', async () => {
  const root = join(work, 'c1');
  const f = fake();
  assert.equal(cachedBuildRoot(spec, root), undefined);
  const dir = await ensureBuildRoot(spec, { root, bootstrap: f.boot, probe });
  assert.equal(dir, join(root, 'entries', rootEntryName(spec)));
  const rec = readRootRecord(dir);
  assert.equal(rec?.compiler, GCC);
  assert.deepEqual(rec?.packages, spec.packages);
  assert.equal(cachedBuildRoot(spec, root), dir);
  assert.equal(await ensureBuildRoot(spec, { root, bootstrap: f.boot, probe }), dir);
  assert.equal(f.runs(), 1);
});

test('a build that fails half way publishes nothing; the next call builds it again', async () => {
  const root = join(work, 'c2');
  const broken: Bootstrapper = async (_s, dir) => {
    writeFileSync(join(dir, 'half'), 'x');
    throw new Error('network went away');
  };
  await assert.rejects(ensureBuildRoot(spec, { root, bootstrap: broken, probe }), /network went away/);
  assert.equal(cachedBuildRoot(spec, root), undefined);
  assert.ok(!existsSync(join(root, 'entries', rootEntryName(spec))));
  assert.deepEqual(readdirSync(join(root, 'entries', '.staging')), []);
  const f = fake();
  const dir = await ensureBuildRoot(spec, { root, bootstrap: f.boot, probe });
  assert.equal(readRootRecord(dir)?.compiler, GCC);
  assert.equal(f.runs(), 1);
});

test('a root whose compiler does not answer is refused and not published', async () => {
  const root = join(work, 'c3');
  const empty: Bootstrapper = async () => undefined;
  await assert.rejects(
    ensureBuildRoot(spec, { root, bootstrap: empty, probe }),
    (e: unknown) => (e as SutureError).code === 'BUILD-ROOT-FAILED',
  );
  assert.equal(cachedBuildRoot(spec, root), undefined);
});

test('a builder killed half way leaves nothing usable: the next one removes it and builds again', async () => {
  const root = join(work, 'c4');
  const mod = fileURLToPath(new URL('./build-root.js', import.meta.url));
  // another process starts the root, writes half of it, then hangs until it is SIGKILLed
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { ensureBuildRoot } from ${JSON.stringify(mod)};
       import { writeFileSync } from 'node:fs';
       await ensureBuildRoot(${JSON.stringify(spec)}, { root: ${JSON.stringify(root)}, probe: () => undefined,
         bootstrap: async (_s, dir) => { writeFileSync(dir + '/half', 'x'); console.log('HALF'); await new Promise(() => {}); } });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SUTURE_LOCK_STALE_MS: '2000' } },
  );
  await new Promise<void>((resolve) =>
    child.stdout.on('data', (d: Buffer) => d.toString().includes('HALF') && resolve()),
  );
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  const staging = readdirSync(join(root, 'entries', '.staging'));
  assert.equal(staging.length, 1, 'the killed builder left its half-built root in staging');
  assert.equal(cachedBuildRoot(spec, root), undefined, 'and it is not the root');
  const saved = process.env.SUTURE_LOCK_STALE_MS;
  process.env.SUTURE_LOCK_STALE_MS = '2000';
  try {
    const f = fake();
    const dir = await ensureBuildRoot(spec, { root, bootstrap: f.boot, probe });
    assert.equal(f.runs(), 1);
    assert.ok(!existsSync(join(dir, 'half')), 'nothing of the killed build is in the new root');
    assert.deepEqual(readdirSync(join(root, 'entries', '.staging')), []);
  } finally {
    if (saved === undefined) delete process.env.SUTURE_LOCK_STALE_MS;
    else process.env.SUTURE_LOCK_STALE_MS = saved;
  }
});

test('a root whose gcc is not the wanted build is refused and not published', async () => {
  const root = join(work, 'c5');
  const want = { ...spec, compiler: '(Debian 14.3.0-1) 14.3.0' };
  await assert.rejects(
    ensureBuildRoot(want, { root, bootstrap: fake().boot, probe }),
    (e: unknown) => (e as SutureError).code === 'KERNEL-COMPILER-MISMATCH',
  );
  assert.equal(cachedBuildRoot(want, root), undefined);
  const ok = await ensureBuildRoot(
    { ...spec, compiler: '(Debian 14.2.0-19) 14.2.0' },
    { root, bootstrap: fake().boot, probe },
  );
  assert.equal(readRootRecord(ok)?.compiler, GCC);
});

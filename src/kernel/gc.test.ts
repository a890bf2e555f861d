/*
 * Cache garbage collection on a fake cache: live entries (linked from a release with a current record)
 * and their blobs stay, and so does the build root its record names; an orphaned tree or build root, an old package, staging leftovers and partial downloads go;
 * anything younger than the age guard stays, so a fetch in progress is never collected.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { collectGarbage } from './gc.js';
import { TREE_RECIPE } from './source-tree.js';

const root = mkdtempSync(join(tmpdir(), 'suture-gc-'));
after(() => rmSync(root, { recursive: true, force: true }));
const R = '6.1.0-53-cloud-amd64';
const E = join(root, 'entries');
const live = 'a'.repeat(64);
const dead = 'b'.repeat(64);

function file(p: string, text = 'x'): void {
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
}

function layout(): void {
  for (const d of [
    'deb-img',
    'deb-hdr',
    'deb-dbg',
    'deb-old',
    'tree-k.@1',
    'tree-old.@2',
    'root-trixie-live',
    'root-trixie-old',
    '.staging/deb-x.1.2',
  ]) {
    mkdirSync(join(E, d), { recursive: true });
  }
  symlinkSync('tree-k.@1', join(E, 'tree-k'));
  symlinkSync('tree-old.@2', join(E, 'tree-old'));
  const paths = {
    vmlinuz: join(E, 'deb-img', 'vmlinuz'),
    config: join(E, 'deb-img', 'config'),
    vmlinux: join(E, 'deb-dbg', 'vmlinux'),
    moduleSymvers: join(E, 'tree-k.@1', 'Module.symvers'),
  };
  for (const p of Object.values(paths)) file(p);
  file(join(E, 'deb-img', 'mods', 'modules.dep'));
  mkdirSync(join(E, 'deb-dbg', 'debug'), { recursive: true });
  file(join(E, 'tree-k.@1', '.config'));
  file(join(E, 'tree-k.@1', 'include', 'generated', 'utsrelease.h'));
  const k = join(root, 'kernels', R);
  mkdirSync(k, { recursive: true });
  symlinkSync(join(E, 'deb-img'), join(k, 'image'));
  symlinkSync(join(E, 'deb-hdr'), join(k, 'headers'));
  symlinkSync(join(E, 'deb-dbg'), join(k, 'dbg'));
  symlinkSync(join(E, 'tree-k.@1'), join(k, 'source'));
  file(
    join(k, 'target.json'),
    JSON.stringify({
      format: 1,
      treeRecipe: TREE_RECIPE,
      release: R,
      debianVersion: '6.1.187-1',
      buildId: 'ab'.repeat(20),
      dir: k,
      ...paths,
      modulesDir: join(E, 'deb-img', 'mods'),
      debugModulesDir: join(E, 'deb-dbg', 'debug'),
      sourceTree: join(E, 'tree-k.@1'),
      toolchain: { kind: 'build-root', root: join(E, 'root-trixie-live') },
      packages: [{ package: 'p', version: '1', sha256: live, size: 1 }],
      timings: {},
    }),
  );
  file(join(root, 'blobs', 'sha256', live));
  file(join(root, 'blobs', 'sha256', dead));
  file(join(root, 'blobs', 'partial', `${dead}.part`));
}

test('young leftovers are kept (a fetch may be using them right now)', async () => {
  layout();
  const r = await collectGarbage({ root });
  assert.deepEqual(r.removed, []);
  assert.ok(existsSync(join(E, 'tree-old.@2')));
});

test('unreferenced entries, staging trees, partials and blobs are removed; live ones stay', async () => {
  const dry = await collectGarbage({ root, minAgeMs: 0, dryRun: true });
  assert.ok(dry.removed.length > 0);
  assert.ok(existsSync(join(E, 'deb-old')), 'a dry run removes nothing');
  const r = await collectGarbage({ root, minAgeMs: 0 });
  assert.deepEqual(
    r.removed.map((p) => p.slice(root.length + 1)).sort(),
    [
      `blobs/partial/${dead}.part`,
      `blobs/sha256/${dead}`,
      'entries/.staging/deb-x.1.2',
      'entries/deb-old',
      'entries/root-trixie-old',
      'entries/tree-old',
      'entries/tree-old.@2',
    ].sort(),
  );
  for (const keep of ['deb-img', 'deb-hdr', 'deb-dbg', 'tree-k', 'tree-k.@1', 'root-trixie-live'])
    assert.ok(existsSync(join(E, keep)), keep);
  assert.ok(existsSync(join(root, 'blobs', 'sha256', live)));
});

test('the tree of a record made by an older recipe is not live', async () => {
  const k = join(root, 'kernels', R, 'target.json');
  const rec = JSON.parse(readFileSync(k, 'utf8'));
  writeFileSync(k, JSON.stringify({ ...rec, treeRecipe: TREE_RECIPE - 1 }));
  const r = await collectGarbage({ root, minAgeMs: 0 });
  assert.ok(r.removed.includes(join(E, 'tree-k.@1')));
  assert.ok(existsSync(join(E, 'deb-img')), 'its packages stay: the next fetch reuses them');
});

/*
 * The completion record (kernels/<release>/target.json): only a complete, well-formed record whose
 * files all exist makes a release "cached"; anything less is ignored and the fetch is redone.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { openCachedKernel, readCachedRecord } from './fetch.js';
import { isCached } from './releases.js';
import { TREE_RECIPE } from './source-tree.js';

const root = mkdtempSync(join(tmpdir(), 'suture-record-'));
const saved = process.env.SUTURE_CACHE;
process.env.SUTURE_CACHE = root;
after(() => {
  if (saved === undefined) delete process.env.SUTURE_CACHE;
  else process.env.SUTURE_CACHE = saved;
  rmSync(root, { recursive: true, force: true });
});

const R = '6.1.0-53-cloud-amd64';

function fakeTarget(): Record<string, unknown> {
  const e = join(root, 'entries', 'fake');
  const files = {
    vmlinuz: join(e, 'vmlinuz'),
    config: join(e, 'config'),
    vmlinux: join(e, 'vmlinux'),
    moduleSymvers: join(e, 'tree', 'Module.symvers'),
  };
  mkdirSync(join(e, 'modules'), { recursive: true });
  mkdirSync(join(e, 'debug'), { recursive: true });
  mkdirSync(join(e, 'tree', 'include', 'generated'), { recursive: true });
  for (const f of [...Object.values(files), join(e, 'modules', 'modules.dep'), join(e, 'tree', '.config')]) {
    writeFileSync(f, 'x');
  }
  writeFileSync(join(e, 'tree', 'include', 'generated', 'utsrelease.h'), 'x');
  return {
    format: 1,
    treeRecipe: TREE_RECIPE,
    release: R,
    debianVersion: '6.1.187-1',
    buildId: '4409ab2b8a5a626c1ee41412e8e6189fb23ae77c',
    dir: join(root, 'kernels', R),
    ...files,
    modulesDir: join(e, 'modules'),
    debugModulesDir: join(e, 'debug'),
    sourceTree: join(e, 'tree'),
    packages: [],
    timings: {},
  };
}

test('a release with no record is not cached, with a hint to fetch it', () => {
  assert.equal(isCached(R), false);
  assert.throws(
    () => openCachedKernel(R),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      return d.code === 'KERNEL-NOT-CACHED' && (d.hint ?? '').includes(`suture kernel fetch ${R}`);
    },
  );
});

test('a complete record opens; a half-written or damaged one is never used', () => {
  const rec = fakeTarget();
  const dir = join(root, 'kernels', R);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'target.json');
  writeFileSync(path, JSON.stringify(rec));
  assert.equal(openCachedKernel(R).buildId, rec.buildId);
  assert.equal(isCached(R), true);

  writeFileSync(path, JSON.stringify(rec).slice(0, 100)); // truncated JSON
  assert.equal(readCachedRecord(R), undefined);
  writeFileSync(path, JSON.stringify({ ...rec, buildId: 'not hex' }));
  assert.equal(readCachedRecord(R), undefined);
  writeFileSync(path, JSON.stringify({ ...rec, treeRecipe: TREE_RECIPE - 1 }));
  assert.equal(readCachedRecord(R), undefined, 'a tree prepared by an older recipe');
  writeFileSync(path, JSON.stringify({ ...rec, release: '6.1.0-54-cloud-amd64' }));
  assert.equal(readCachedRecord(R), undefined, 'a record for another release');
  writeFileSync(path, JSON.stringify(rec));
  unlinkSync(rec.vmlinux as string); // an artifact vanished
  assert.equal(readCachedRecord(R), undefined);
  assert.throws(
    () => openCachedKernel(R),
    (e: unknown) => (e as SutureError).code === 'KERNEL-NOT-CACHED',
  );
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { indexSymbols, readElfFile, type SymbolIndex } from '../elf/index.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { compileObject, kbuildRecipe } from './compile.js';
import {
  compareWithShipped,
  type FunctionSymbol,
  objectFunctions,
  type ShippedSymbols,
  shippedFromIndex,
  verifyAgainstShipped,
} from './verify.js';

const fake = (
  groups: Record<string, FunctionSymbol[][]>,
  globals: FunctionSymbol[] = [],
): ShippedSymbols => ({
  where: 'the shipped vmlinux',
  fileGroups: (b) => groups[b] ?? [],
  global: (n) => globals.find((g) => g.name === n),
});
const local = (name: string, size: number): FunctionSymbol => ({ name, size, local: true });

test("the blog's isra case: the shipped kernel has format_corename.isra.0, our build format_corename", () => {
  const shipped = fake({
    'coredump.c': [[local('format_corename.isra.0', 1234), local('zap_threads', 300)]],
  });
  const ours = [local('format_corename', 1250), local('zap_threads', 300)];
  assert.throws(
    () => verifyAgainstShipped(ours, shipped, 'fs/coredump.c'),
    (e: unknown) => {
      assert.ok(isSutureError(e));
      assert.equal(e.code, 'VERIFY-MISMATCH');
      assert.deepEqual(e.diagnostic.detail, [
        'format_corename: only in our build (size 1250)',
        'format_corename.isra.0: only in the shipped binary (size 1234)',
      ]);
      return true;
    },
  );
});

test('the best of several same-named file groups is compared; weak defaults overridden by a strong one are skipped', () => {
  const shipped = fake({ 'core.c': [[local('a', 1)], [local('a', 10), local('b', 20)]] }, [
    { name: 'arch_hook', size: 99, local: false },
  ]);
  const ours: FunctionSymbol[] = [
    local('a', 10),
    local('b', 20),
    { name: 'arch_hook', size: 5, local: false, weak: true },
  ];
  assert.deepEqual(compareWithShipped(ours, shipped, 'core.c'), { diffs: [], group: 1 });
  assert.deepEqual(verifyAgainstShipped(ours, shipped, 'kernel/core.c'), { group: 1 });
  assert.throws(() => verifyAgainstShipped([local('x', 1)], shipped, 'fs/none.c'), /VERIFY-NOT-SHIPPED/);
});

// ---- against the real target kernel ----
let target: KernelTarget;
let vmlinux: SymbolIndex;
const dir = mkdtempSync(join(tmpdir(), 'suture-verify-test-'));
before(async () => {
  target = await ensureKernel(defaultRelease());
  vmlinux = await indexSymbols(target.vmlinux);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('real kernel: meminfo.o built with kbuild flags matches the debug vmlinux; with -Os it does not', async () => {
  const tree = target.sourceTree;
  const recipe = kbuildRecipe(tree, 'fs/proc/meminfo.o');
  const good = await compileObject({ tree, recipe, outObject: join(dir, 'good', 'meminfo.o') });
  const ours = objectFunctions(await readElfFile(good.object));
  assert.ok(ours.some((f) => f.name === 'meminfo_proc_show'));
  assert.deepEqual(verifyAgainstShipped(ours, shippedFromIndex(vmlinux), 'fs/proc/meminfo.c'), { group: 0 });

  // the same unit with one flag changed: the compiler lays out the functions differently
  const cc = [...recipe.cc];
  cc.splice(cc.indexOf('-O2') + 1, 0, '-Os');
  const bad = await compileObject({
    tree,
    recipe: { ...recipe, cc },
    outObject: join(dir, 'bad', 'meminfo.o'),
  });
  const theirs = objectFunctions(await readElfFile(bad.object));
  assert.throws(
    () => verifyAgainstShipped(theirs, shippedFromIndex(vmlinux), 'fs/proc/meminfo.c'),
    (e: unknown) => {
      assert.ok(isSutureError(e));
      assert.equal(e.code, 'VERIFY-MISMATCH');
      assert.ok(
        (e.diagnostic.detail ?? []).some((l) => /^meminfo_proc_show: size \d+ here, 2572 shipped$/.test(l)),
        (e.diagnostic.detail ?? []).join('\n'),
      );
      return true;
    },
  );
});

test('real kernel: a module object is verified against its debug .ko', async () => {
  const tree = target.sourceTree;
  const recipe = kbuildRecipe(tree, 'fs/fuse/acl.o');
  const obj = await compileObject({ tree, recipe, outObject: join(dir, 'fuse', 'acl.o') });
  const ko = await indexSymbols(join(target.debugModulesDir, 'kernel/fs/fuse/fuse.ko'));
  const ours = objectFunctions(await readElfFile(obj.object));
  assert.ok(ours.length > 0);
  verifyAgainstShipped(ours, shippedFromIndex(ko), 'fs/fuse/acl.c');
});

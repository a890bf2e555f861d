/*
 * Test fixture (not a test): the blog's meminfo patch compiled against the target kernel's prepared
 * tree with kbuild's exact command line, diffed, and linked into a livepatch module. Shared by the
 * module test and its VM test.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { KernelTarget } from '../kernel/target.js';
import { compileObject, kbuildRecipe } from './compile.js';
import { buildLivepatchModule, type LivepatchModule } from './livepatch-module.js';
import { diffObjects, type ObjectDiff } from './objdiff.js';

export const MEMINFO_PATCH = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');

export interface MeminfoBuild {
  dir: string;
  diff: ObjectDiff;
  module: LivepatchModule;
}

export async function buildMeminfoLivepatch(
  target: KernelTarget,
  patch = MEMINFO_PATCH,
): Promise<MeminfoBuild> {
  const dir = mkdtempSync(join(tmpdir(), 'suture-meminfo-'));
  const tree = target.sourceTree;
  const source = 'fs/proc/meminfo.c';
  const patchedSource = join(dir, 'src', source);
  mkdirSync(join(patchedSource, '..'), { recursive: true });
  copyFileSync(join(tree, source), patchedSource);
  execFileSync('patch', ['-s', '-p1', '-d', join(dir, 'src'), '-i', patch]);
  const recipe = kbuildRecipe(tree, 'fs/proc/meminfo.o');
  const original = await compileObject({ tree, recipe, outObject: join(dir, 'original', 'meminfo.o') });
  const patched = await compileObject({
    tree,
    recipe,
    outObject: join(dir, 'patched', 'meminfo.o'),
    source: patchedSource,
  });
  const diff = await diffObjects(original.object, patched.object, { source });
  const module = await buildLivepatchModule({
    name: 'meminfo',
    replace: false,
    target,
    units: [{ source, object: 'fs/proc/meminfo.o', target: 'vmlinux', diff }],
    outDir: join(dir, 'out'),
    workDir: dir,
  });
  return { dir, diff, module };
}

/*
 * Test fixture (not a test): a patch from the corpus compiled against the target kernel's prepared
 * tree with kbuild's exact command line, diffed, and linked into a livepatch module. Shared by the
 * module test and its VM test.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { KernelTarget } from '../../kernel/target.js';
import { diffObjects, type ObjectDiff } from '../../objdiff/objdiff.js';
import { compileObject, kbuildRecipe } from '../../source/compile.js';
import { buildLivepatchModule, type LivepatchModule, type LivepatchUnit } from '../livepatch-module.js';

const CORPUS = resolve(process.cwd(), '..', 'shared', 'corpus');
export const MEMINFO_PATCH = join(CORPUS, 'blog', 'meminfo-string.patch');
/** a fix to a function of a module (tcp_dctcp), from the stable corpus */
export const DCTCP_PATCH = join(CORPUS, 'stable-6.1.187-to-192', 'net_ipv4_tcp_dctcp.patch');
/** a fix to ip_gre whose new code calls ip_tunnel's exports */
export const IP_GRE_PATCH = join(CORPUS, 'stable-6.1.187-to-192', 'net_ipv4_ip_gre.patch');

export interface FixtureBuild {
  dir: string;
  diffs: ObjectDiff[];
  /** the first unit's diff */
  diff: ObjectDiff;
  units: LivepatchUnit[];
  module: LivepatchModule;
}

export async function buildFixtureLivepatch(
  target: KernelTarget,
  patch: string,
  name: string,
): Promise<FixtureBuild> {
  const dir = mkdtempSync(join(tmpdir(), `suture-${name}-`));
  const tree = target.sourceTree;
  const sources = [...readFileSync(patch, 'utf8').matchAll(/^\+\+\+ b\/(\S+\.c)$/gm)].map((m) => m[1]!);
  for (const source of sources) {
    mkdirSync(join(dir, 'src', source, '..'), { recursive: true });
    copyFileSync(join(tree, source), join(dir, 'src', source));
  }
  execFileSync('patch', ['-s', '-p1', '-d', join(dir, 'src'), '-i', patch]);
  // __FILE__ (WARN, BUG, pr_* sites) must name the tree's file, not the scratch copy
  for (const source of sources) {
    const copy = join(dir, 'src', source);
    writeFileSync(copy, `#line 1 ${JSON.stringify(source)}\n${readFileSync(copy, 'utf8')}`);
  }
  const units: LivepatchUnit[] = [];
  for (const source of sources) {
    const object = source.replace(/\.c$/, '.o');
    const recipe = kbuildRecipe(tree, object);
    const original = await compileObject({ tree, recipe, outObject: join(dir, 'original', object) });
    const patched = await compileObject({
      tree,
      recipe,
      outObject: join(dir, 'patched', object),
      source: join(dir, 'src', source),
    });
    const diff = await diffObjects(original.object, patched.object, { source });
    units.push({
      source,
      object,
      target: recipe.module && recipe.modname ? recipe.modname : 'vmlinux',
      diff,
    });
  }
  const module = await buildLivepatchModule({
    name,
    replace: false,
    target,
    units,
    outDir: join(dir, 'out'),
    workDir: dir,
  });
  const diffs = units.map((u) => u.diff);
  return { dir, diffs, diff: diffs[0]!, units, module };
}

export function buildMeminfoLivepatch(target: KernelTarget): Promise<FixtureBuild> {
  return buildFixtureLivepatch(target, MEMINFO_PATCH, 'meminfo');
}

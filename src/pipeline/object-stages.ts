/*
 * The object side of the recipe (pipeline.ts): objdiff (every original/patched pair compared by
 * objdiff/, then the refusals of check/, source and object rules together, end the build), module
 * (klp/livepatch-module.ts: klp structures, relocations, the kbuild link) and manifest (next to it).
 */
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { noChange } from '../check/object/no-change.js';
import { refuse } from '../check/refusal.js';
import { type ElfObject, readElfFile } from '../elf/index.js';
import { cacheRoot } from '../kernel/cache.js';
import type { KernelTarget } from '../kernel/target.js';
import { ignoredByAuthor, readAuthorRecords } from '../klp/author-records.js';
import { buildLivepatchModule, type LivepatchModule } from '../klp/livepatch-module.js';
import type { ShippedSymbols } from '../klp/shipped-symbols.js';
import { targetTableSizes } from '../objdiff/kernel-tables.js';
import { diffLoaded } from '../objdiff/objdiff.js';
import { targetCode } from '../objdiff/target-code.js';
import { readPrototypes } from '../source/compile-units.js';
import type { AppliedFile, SourceDiff } from '../source/diff.js';
import type { Build, UnitResult } from './build.js';
import { DEFAULT_PATCH_VERSION, makeManifest } from './manifest.js';
import { BuildRefused } from './refused.js';
import { sourceRefusals } from './source-rules.js';

/** The objdiff stage: every pair compared (objdiff/), then the refusals of check/ end the build. */
export async function objdiffStage(
  b: Build,
  units: UnitResult[],
  originals: Map<UnitResult, ElfObject>,
  diff: SourceDiff,
  tree: string,
  applied: AppliedFile[],
  target: KernelTarget,
  shipped: ShippedSymbols,
): Promise<string[]> {
  const { summary, warnings } = b.result;
  // the target's own table entry sizes and code requirements (IBT, return thunks)
  const tables = targetTableSizes(target, cacheRoot());
  const code = targetCode(target.config);
  for (const r of units) {
    const patched = await readElfFile(r.patched.object);
    const prototypes = readPrototypes(r);
    const index = await shipped.unit(r.unit);
    r.diff = diffLoaded(originals.get(r)!, patched, r.original.object, r.patched.object, {
      source: r.unit.source,
      ignore: ignoredByAuthor(readAuthorRecords(patched, r.patched.object)),
      tables,
      target: code,
      kernelGlobal: (name) => index.global(name) !== undefined,
      ...(prototypes ? { prototypes } : {}),
    });
    const obj = basename(r.unit.object);
    for (const f of r.diff.functions)
      if (f.change === 'changed' || f.change === 'new')
        summary.push(`${obj}: ${f.change} function: ${f.name}${f.reason ? ` (${f.reason})` : ''}`);
    for (const w of r.diff.warnings) {
      warnings.push(w);
      b.run.emit({ kind: 'warning', stage: 'objdiff', diagnostic: w });
    }
  }
  // refusals and "nothing changed" end the build here, even when asked to stop after this stage
  const refusals = [...sourceRefusals(diff, tree, applied), ...units.flatMap((r) => r.diff?.refusals ?? [])];
  if (refusals.length) throw new BuildRefused(refusals, { summary, warnings });
  const unchanged = noChange.check(
    units.map((r) => ({ object: basename(r.unit.object), functions: r.diff?.functions ?? [] })),
    summary,
  );
  if (unchanged.length) refuse(unchanged[0]!);
  return summary;
}

/** The module stage: klp structures, klp relocations and the kbuild link (klp/livepatch-module.ts). */
export async function moduleStage(
  b: Build,
  c: { target: KernelTarget; units: UnitResult[]; outDir: string; shipped: ShippedSymbols },
): Promise<LivepatchModule> {
  const mod = await buildLivepatchModule({
    name: b.name,
    replace: b.opts.replace === true,
    target: c.target,
    outDir: c.outDir,
    workDir: b.workDir,
    shipped: c.shipped,
    rulesOnly: b.opts.checkOnly === true,
    strict: b.opts.strict === true,
    ...(b.toolchain ? { toolchain: b.toolchain } : {}),
    units: c.units.map((u) => ({
      source: u.unit.source,
      object: u.unit.object,
      target: u.unit.target,
      originalObject: u.original.object,
      patchedObject: u.patched.object,
      diff: u.diff!,
      sympos: u.sympos,
      ...(u.unit.modulePath ? { modulePath: u.unit.modulePath } : {}),
    })),
  });
  for (const w of mod.warnings) {
    b.result.warnings.push(w);
    b.run.emit({ kind: 'warning', stage: 'module', diagnostic: w });
  }
  b.result.ko = mod.ko;
  return mod;
}

/** The manifest stage: `livepatch-NAME.manifest.json` next to the module. */
export function manifestStage(
  b: Build,
  c: { target: KernelTarget; mod: LivepatchModule; outDir: string },
): string {
  const manifest = makeManifest({
    name: b.name,
    version: b.opts.version ?? DEFAULT_PATCH_VERSION,
    replace: b.opts.replace === true,
    target: c.target,
    ko: c.mod.ko,
    diffText: b.diffText,
    objects: c.mod.manifestObjects,
  });
  const path = join(c.outDir, `livepatch-${b.name}.manifest.json`);
  writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
  b.result.manifest = manifest;
  b.result.manifestPath = path;
  return path;
}

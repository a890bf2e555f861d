/*
 * The source side of the recipe (pipeline.ts), one function a stage, each a call into the folder that
 * owns it: kernel (kernel/: the target and its own compiler), diff (source/diff.ts onto the overlay),
 * units (source/units.ts), compile (source/compile-units.ts) and verify (source/verify.ts, which also
 * gives each unit's sympos). What they learn goes into the build's result as they go.
 */
import { basename } from 'node:path';
import { type ElfObject, readElfFile } from '../elf/index.js';
import { ensureKernel } from '../kernel/fetch.js';
import { kernelToolchain } from '../kernel/kernel-toolchain.js';
import type { KernelTarget } from '../kernel/target.js';
import { authorIncludeDir } from '../klp/author-include.js';
import type { ShippedSymbols } from '../klp/shipped-symbols.js';
import { fileSympos } from '../klp/sympos.js';
import { compileUnits } from '../source/compile-units.js';
import { type AppliedFile, applyDiff, type SourceDiff } from '../source/diff.js';
import { planUnits, type UnitPlan } from '../source/units.js';
import { verifyUnit } from '../source/verify.js';
import type { Build, UnitResult } from './build.js';
import type { StageRunner } from './stages.js';

export async function kernelStage(b: Build): Promise<KernelTarget> {
  const target = b.opts.target ?? (await fetchKernel(b.opts.release, b.run));
  b.result.release = target.release;
  // every make, compile and objtool run below uses it; a host compiler not the kernel's is refused here
  b.toolchain = await kernelToolchain(target.release);
  return target;
}

/** The diff stage: GNU patch onto the overlay (source/diff.ts); offsets and allowed fuzz are warnings. */
export function diffStage(b: Build, diff: SourceDiff, tree: string): AppliedFile[] {
  const applied = applyDiff(diff, tree, b.overlay, { fuzz: b.opts.fuzz });
  for (const w of applied.flatMap((f) => f.warnings ?? [])) {
    b.result.warnings.push(w);
    b.run.emit({ kind: 'warning', stage: 'diff', diagnostic: w });
  }
  return applied;
}

export function unitsStage(b: Build, applied: AppliedFile[], target: KernelTarget): UnitPlan {
  const plan = planUnits(applied, target, b.toolchain);
  b.result.plan = plan;
  for (const h of plan.headers)
    b.run.note('units', `header ${h.header} is included by: ${h.candidates.join(', ')}`);
  return plan;
}

function fetchKernel(release: string, run: StageRunner): Promise<KernelTarget> {
  return ensureKernel(release, {
    onProgress: (e) => {
      if (e.kind === 'step' && e.state !== 'start') {
        const took = e.ms === undefined ? '' : ` in ${(e.ms / 1000).toFixed(1)} s`;
        run.note('kernel', `${e.step}: ${e.state}${took}`);
      }
    },
  });
}

/** The compile stage: source/compile-units.ts, asking the shipped binary whether a unit is built at all. */
export async function compileStage(
  b: Build,
  plan: UnitPlan,
  tree: string,
  shipped: ShippedSymbols,
): Promise<UnitResult[]> {
  const compiled = await compileUnits(plan.units, {
    tree,
    overlay: b.overlay,
    workDir: b.workDir,
    includeDirs: [authorIncludeDir()],
    ...(b.toolchain ? { toolchain: b.toolchain } : {}),
    isShipped: async (u) => (await shipped.unit(u)).localsInFile(basename(u.source)).length > 0,
  });
  b.result.units = compiled.map((r) => ({ ...r, sympos: new Map() }));
  return b.result.units;
}

/** The verify stage: each original against its shipped binary; its file group gives the sympos. */
export async function verifyStage(
  b: Build,
  units: UnitResult[],
  tree: string,
  shipped: ShippedSymbols,
): Promise<Map<UnitResult, ElfObject>> {
  const originals = new Map<UnitResult, ElfObject>();
  for (const r of units) {
    const index = await shipped.unit(r.unit);
    const original = await readElfFile(r.original.object);
    const { group, note } = await verifyUnit({
      unit: r.unit,
      original,
      index,
      tree,
      workDir: b.workDir,
      ...(b.toolchain ? { toolchain: b.toolchain } : {}),
    });
    if (note) b.run.note('verify', note);
    r.sympos = fileSympos(index, r.unit.source, group);
    originals.set(r, original);
  }
  return originals;
}

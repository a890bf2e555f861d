/*
 * The compile stage: each unit twice, original and patched, two compiles at a time (the machine's cores).
 *
 * A unit whose unmodified source does not compile is either broken tooling or a file this kernel does
 * not build (its binary has no symbols from it: UNIT-NOT-BUILT). A patched unit that does not compile is
 * shown with the patched file's own line numbers, and refused when what it lacks are definitions added
 * elsewhere in the same release (BUILD-MISSING-DEFINITIONS).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Prototype, parseAuxInfo } from '../check/object/prototypes.js';
import { refuse } from '../check/refusal.js';
import { missingDefinitions } from '../check/source/missing-definitions.js';
import { unitNotBuilt } from '../check/source/unit-not-built.js';
import type { Toolchain } from '../kernel/toolchain.js';
import {
  type CompiledObject,
  CompileFailure,
  compileObject,
  missingDefinitions as missingNames,
} from './compile.js';
import type { Unit } from './units.js';

export interface CompiledUnit {
  unit: Unit;
  original: CompiledObject;
  patched: CompiledObject;
}

export interface CompileUnitsRequest {
  tree: string;
  overlay: string;
  workDir: string;
  /** the kernel's toolchain (kernelToolchain(release)); default: the host */
  toolchain?: Toolchain;
  /** whether the binary the unit belongs to has symbols from its file (asked only when the original fails) */
  isShipped: (u: Unit) => Promise<boolean>;
  /** searched after the kernel's include directories when the patched side compiles (author headers) */
  includeDirs?: readonly string[];
}

/** Original and patched compile of every unit, two at a time. */
export async function compileUnits(units: Unit[], req: CompileUnitsRequest): Promise<CompiledUnit[]> {
  const jobs: (() => Promise<void>)[] = [];
  const out: CompiledUnit[] = [];
  for (const unit of units) {
    const r = { unit } as CompiledUnit;
    out.push(r);
    const patchedSource = unit.patchedSource ?? copyForHeaders(req.tree, req.overlay, unit);
    jobs.push(async () => {
      r.original = await compileOriginal(unit, req);
    });
    jobs.push(async () => {
      r.patched = await compilePatched(unit, patchedSource, req);
    });
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all([worker(), worker()]);
  return out;
}

async function compileOriginal(unit: Unit, req: CompileUnitsRequest): Promise<CompiledObject> {
  try {
    return await compileObject({
      tree: req.tree,
      recipe: unit.recipe,
      ...(req.toolchain ? { toolchain: req.toolchain } : {}),
      outObject: join(req.workDir, 'original', unit.object),
    });
  } catch (e) {
    // the unmodified source does not compile with the image's config: is the unit built at all?
    if (e instanceof CompileFailure && !(await req.isShipped(unit)))
      refuse(unitNotBuilt.configOff(unit.source, unit.target, e.diagnostic.detail));
    throw e;
  }
}

async function compilePatched(unit: Unit, source: string, req: CompileUnitsRequest): Promise<CompiledObject> {
  try {
    return await compileObject({
      tree: req.tree,
      recipe: unit.recipe,
      ...(req.toolchain ? { toolchain: req.toolchain } : {}),
      outObject: join(req.workDir, 'patched', unit.object),
      source,
      overlay: req.overlay,
      ...(req.includeDirs ? { includeDirs: req.includeDirs } : {}),
    });
  } catch (e) {
    if (!(e instanceof CompileFailure)) throw e;
    const f = await explainFailure(e, unit, req);
    const missing = missingNames(f.stderr);
    if (missing.length) refuse(missingDefinitions.diagnose(unit.source, missing, f.diagnostic.detail));
    throw f;
  }
}

/**
 * The patched copy carries #line directives, so the compiler quotes the ORIGINAL file's lines in its
 * errors. Compile the patched text as the diff made it instead, so the messages show the patched lines
 * with the patched file's numbering.
 */
async function explainFailure(
  e: CompileFailure,
  unit: Unit,
  req: CompileUnitsRequest,
): Promise<CompileFailure> {
  const rawDir = join(req.workDir, 'raw');
  const raw = join(rawDir, unit.source);
  if (!existsSync(raw)) return e;
  try {
    await compileObject({
      tree: req.tree,
      recipe: unit.recipe,
      ...(req.toolchain ? { toolchain: req.toolchain } : {}),
      outObject: join(req.workDir, 'raw-out', unit.object),
      source: raw,
      overlay: req.overlay,
      ...(req.includeDirs ? { includeDirs: req.includeDirs } : {}),
    });
    return e;
  } catch (again) {
    if (!(again instanceof CompileFailure)) return e;
    const clean = (t: string) => t.split(`${rawDir}/`).join('');
    return new CompileFailure(clean(again.stderr), {
      ...again.diagnostic,
      message: `${unit.source} does not compile after patching (line numbers of the patched file)`,
      detail: (again.diagnostic.detail ?? []).map(clean),
    });
  }
}

/** A unit recompiled only because of a header still needs an overlay copy of its .c (quoted includes). */
function copyForHeaders(tree: string, overlay: string, unit: Unit): string {
  const dest = join(overlay, unit.source);
  mkdirSync(join(dest, '..'), { recursive: true });
  const text = readFileSync(join(tree, unit.source), 'utf8');
  writeFileSync(dest, `#line 1 ${JSON.stringify(unit.source)}\n${text}`);
  return dest;
}

/** Units that turned out not to include a changed header are dropped (their dependency file says so). */
export function unitsReallyChanged<T extends CompiledUnit>(compiled: T[]): T[] {
  return compiled.filter(
    (r) => r.unit.patchedSource || r.unit.viaHeaders.some((h) => r.original.deps.includes(h)),
  );
}

/** Both units' prototypes (gcc -aux-info next to each object), for KLP-SIGNATURE-CHANGED. */
export function readPrototypes(
  r: CompiledUnit,
): { original: Map<string, Prototype>; patched: Map<string, Prototype> } | undefined {
  const read = (o: CompiledObject) =>
    existsSync(o.prototypes) ? parseAuxInfo(readFileSync(o.prototypes, 'utf8')) : undefined;
  const original = read(r.original);
  const patched = read(r.patched);
  return original && patched ? { original, patched } : undefined;
}

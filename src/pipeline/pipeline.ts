/*
 * The build pipeline: from a source diff and a target kernel to a livepatch module and its manifest.
 *
 * `buildLivepatch` is the recipe: the list of its stages, each a call into the folder that owns it,
 * timed and reported through `onProgress` as it starts and ends:
 *   kernel   — the target's cached artifacts (kernel/fetch.ts: packages, prepared tree, debug vmlinux)
 *   diff     — parse the diff, apply it to copies of the touched files (source/diff.ts)
 *   lines    — keep the original line numbering in the patched copies (source/line-numbers.ts)
 *   units    — changed files → objects and their targets, headers → including units (source/units.ts)
 *   compile  — each unit twice, original and patched, with kbuild's command line (source/compile-units.ts)
 *   verify   — the original objects against the shipped vmlinux / debug modules (source/verify.ts)
 *   objdiff  — one record per symbol: same / changed / new, what is carried (objdiff/), the rules (check/)
 *   module   — klp structures, klp relocations, kbuild link (klp/livepatch-module.ts)
 *   manifest — the manifest next to the module (manifest.ts)
 *
 * A refusal (a rule of check/ says no) is not a crash: the pipeline throws BuildRefused carrying every
 * refusal diagnostic, so the CLI and the corpus runner can show each rule id. `checkOnly` (`suture
 * check`) runs the module stage's rules without linking and stops there. Warnings of the checks
 * (DIFF-OFFSET, DIFF-FUZZ under `fuzz`, KLP-INLINE-SPREAD, KLP-MODULE-TRACEPOINT-INERT unless `strict`)
 * do not stop the build: each is emitted as a
 * `warning` progress event and kept in the result (and in BuildRefused when something else refuses).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { noChange } from '../check/object/no-change.js';
import { isRefusal, refuse } from '../check/refusal.js';
import { type Diagnostic, fail, SutureError } from '../diagnostic.js';
import { type ElfObject, readElfFile } from '../elf/index.js';
import { cacheRoot } from '../kernel/cache.js';
import { ensureKernel } from '../kernel/fetch.js';
import { kernelToolchain } from '../kernel/kernel-toolchain.js';
import type { KernelTarget } from '../kernel/target.js';
import type { Toolchain } from '../kernel/toolchain.js';
import { authorIncludeDir } from '../klp/author-include.js';
import { ignoredByAuthor, readAuthorRecords } from '../klp/author-records.js';
import { buildLivepatchModule, type LivepatchModule } from '../klp/livepatch-module.js';
import { ShippedSymbols } from '../klp/shipped-symbols.js';
import { fileSympos } from '../klp/sympos.js';
import type { Manifest } from '../manifest/manifest.js';
import { targetTableSizes } from '../objdiff/kernel-tables.js';
import { diffLoaded, type ObjectDiff } from '../objdiff/objdiff.js';
import { targetCode } from '../objdiff/target-code.js';
import {
  type CompiledUnit,
  compileUnits,
  readPrototypes,
  unitsReallyChanged,
} from '../source/compile-units.js';
import {
  type AppliedFile,
  applyDiff,
  checkFuzz,
  parseDiff,
  readDiff,
  type SourceDiff,
} from '../source/diff.js';
import { writeLineDirectives } from '../source/line-numbers.js';
import { planUnits, type UnitPlan } from '../source/units.js';
import { verifyUnit } from '../source/verify.js';
import { DEFAULT_PATCH_VERSION, makeManifest } from './manifest.js';
import { sourceRefusals } from './source-rules.js';
import { type BuildProgress, type Stage, StageRunner, StopAfter } from './stages.js';
import {
  count,
  describeApplied,
  describeCompiled,
  describePlan,
  describeTarget,
  describeVerified,
} from './summaries.js';

export { DEFAULT_PATCH_VERSION, makeManifest } from './manifest.js';
export { type BuildProgress, STAGES, type Stage } from './stages.js';

export interface BuildOptions {
  diffPath: string;
  release: string;
  /** livepatch name (default: from the diff's file name) */
  name?: string;
  /** the manifest's version of this livepatch (default DEFAULT_PATCH_VERSION, `1`) */
  version?: string;
  replace?: boolean;
  /** where livepatch-NAME.ko and NAME.manifest.json go (default: cwd) */
  outDir?: string;
  /** keep the scratch directory (overlay, objects) for inspection */
  keepWork?: boolean;
  /** context lines a hunk may ignore when the diff is applied (`patch --fuzz`, 0 to 3; default 0) */
  fuzz?: number;
  /** stop after this stage (e.g. `objdiff` to classify without linking a module) */
  stopAfter?: Stage;
  /** `suture check`: every stage and rule up to the module's, which links nothing; stops after `module` */
  checkOnly?: boolean;
  /** `--strict`: warnings that carry a patch with a loss (KLP-MODULE-TRACEPOINT-INERT) refuse it instead */
  strict?: boolean;
  /** use this target instead of ensureKernel(release) */
  target?: KernelTarget;
  onProgress?: (e: BuildProgress) => void;
}

export interface UnitResult extends CompiledUnit {
  diff?: ObjectDiff;
  /** sympos of each local of the unit's file in the running kernel (0 = unique) */
  sympos: Map<string, number>;
}

export interface BuildResult {
  name: string;
  release: string;
  plan: UnitPlan;
  units: UnitResult[];
  timings: { stage: Stage; ms: number }[];
  /** lines like `meminfo.o: changed function: meminfo_proc_show` */
  summary: string[];
  /** every warning of the checks, all units (also emitted as `warning` progress events) */
  warnings: Diagnostic[];
  ko?: string;
  manifestPath?: string;
  manifest?: Manifest;
  workDir: string;
}

/** A build stopped by safety rules: each refusal is a diagnostic with its rule id as code. */
export class BuildRefused extends SutureError {
  readonly refusals: Diagnostic[];
  /** warnings of the checks known when the build was refused */
  readonly warnings: Diagnostic[];
  constructor(refusals: Diagnostic[], partial: { summary: string[]; warnings?: Diagnostic[] }) {
    super({
      code: 'BUILD-REFUSED',
      message: `the patch cannot be livepatched safely (${refusals.length} refusal${refusals.length === 1 ? '' : 's'}: ${[...new Set(refusals.map((r) => r.code))].join(', ')})`,
      detail: partial.summary,
      hint: 'see each refusal above for why and what to do',
    });
    this.refusals = refusals;
    this.warnings = partial.warnings ?? [];
  }
}

/** `meminfo-string.patch` → `meminfo-string` (lowercase letters, digits, - and _ only, ≤ 48). */
export function defaultName(diffPath: string): string {
  const base = basename(diffPath)
    .replace(/\.(patch|diff)$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);
  return base || 'patch';
}

export function checkName(name: string): string {
  if (!/^[a-z0-9_-]{1,48}$/.test(name)) {
    fail('BUILD-BAD-NAME', `\`${name}\` is not a valid livepatch name`, {
      hint: 'use 1 to 48 lowercase letters, digits, - and _ (it becomes livepatch-NAME.ko)',
    });
  }
  return name;
}

/** One build in progress: its options, scratch directories, stage runner and what is known so far. */
interface Build {
  opts: BuildOptions;
  name: string;
  diffText: string;
  workDir: string;
  overlay: string;
  run: StageRunner;
  /** returned as is when the caller asked to stop after a stage */
  result: BuildResult;
  /** the kernel's own compiler (host or build root), known after the kernel stage */
  toolchain?: Toolchain;
}

/** Run every stage. Throws SutureError (BuildRefused for refusals) on the first stage that fails. */
export async function buildLivepatch(opts: BuildOptions): Promise<BuildResult> {
  const name = checkName(opts.name ?? defaultName(opts.diffPath));
  // read and check the diff before anything slow (a cold kernel cache takes minutes)
  const { text: diffText } = readDiff(opts.diffPath);
  checkFuzz(opts.fuzz);
  const workDir = mkdtempSync(join(tmpdir(), `suture-build-${name}-`));
  const run = new StageRunner(
    opts.onProgress ?? (() => undefined),
    opts.checkOnly ? 'module' : opts.stopAfter,
  );
  const result: BuildResult = {
    name,
    release: opts.release,
    plan: { units: [], headers: [], ignored: [] },
    units: [],
    timings: run.timings,
    summary: [],
    warnings: [],
    workDir,
  };
  let keep = opts.keepWork === true;
  try {
    return await recipe({ opts, name, diffText, workDir, overlay: join(workDir, 'overlay'), run, result });
  } catch (e) {
    if (e instanceof StopAfter) return result;
    keep = keep || !(e instanceof SutureError);
    // a rule of check/ said no inside a stage: the build is refused with its diagnostic
    if (isRefusal(e)) throw new BuildRefused([e.diagnostic], { summary: [], warnings: result.warnings });
    throw e;
  } finally {
    if (!keep) rmSync(workDir, { recursive: true, force: true });
  }
}

/** The stages, in order: each a call into the folder that owns it. */
async function recipe(b: Build): Promise<BuildResult> {
  const { run, result } = b;
  const target = await run.run('kernel', () => kernelStage(b), describeTarget);
  const tree = target.sourceTree;
  const diff = parseDiff(b.diffText, b.opts.diffPath, tree);
  const applied = await run.run(
    'diff',
    () => diffStage(b, diff, tree),
    (a) => describeApplied(a, diff),
  );
  await run.run('lines', () => writeLineDirectives(applied, b.workDir), count('#line directive'));
  const plan = await run.run('units', () => unitsStage(b, applied, target), describePlan);
  const shipped = new ShippedSymbols(target);
  const compiled = await run.run('compile', () => compileStage(b, plan, tree, shipped), describeCompiled);
  const units = unitsReallyChanged(compiled);
  result.units = units;
  const originals = await run.run('verify', () => verifyStage(b, units, tree, shipped), describeVerified);
  await run.run(
    'objdiff',
    () => objdiffStage(b, units, originals, diff, tree, applied, target, shipped),
    count('function', 'to carry'),
  );
  const outDir = resolve(b.opts.outDir ?? '.');
  mkdirSync(outDir, { recursive: true });
  const mod = await run.run(
    'module',
    () => moduleStage(b, { target, units, outDir, shipped }),
    (m) => m.ko || 'module rules passed (nothing linked)',
  );
  await run.run(
    'manifest',
    () => manifestStage(b, { target, mod, outDir }),
    (p) => p,
  );
  return result;
}

async function kernelStage(b: Build): Promise<KernelTarget> {
  const target = b.opts.target ?? (await fetchKernel(b.opts.release, b.run));
  b.result.release = target.release;
  // every make, compile and objtool run below uses it; a host compiler not the kernel's is refused here
  b.toolchain = await kernelToolchain(target.release);
  return target;
}

/** The diff stage: GNU patch onto the overlay (source/diff.ts); offsets and allowed fuzz are warnings. */
function diffStage(b: Build, diff: SourceDiff, tree: string): AppliedFile[] {
  const applied = applyDiff(diff, tree, b.overlay, { fuzz: b.opts.fuzz });
  for (const w of applied.flatMap((f) => f.warnings ?? [])) {
    b.result.warnings.push(w);
    b.run.emit({ kind: 'warning', stage: 'diff', diagnostic: w });
  }
  return applied;
}

function unitsStage(b: Build, applied: AppliedFile[], target: KernelTarget): UnitPlan {
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
async function compileStage(
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
async function verifyStage(
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

/** The objdiff stage: every pair compared (objdiff/), then the refusals of check/ end the build. */
async function objdiffStage(
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
async function moduleStage(
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
function manifestStage(b: Build, c: { target: KernelTarget; mod: LivepatchModule; outDir: string }): string {
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

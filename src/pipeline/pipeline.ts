/*
 * The build pipeline: from a source diff and a target kernel to a livepatch module and its manifest.
 *
 * Stages, in order, each timed and reported through `onProgress` as it starts and ends:
 *   kernel   — the target's cached artifacts (ensureKernel: packages, prepared tree, debug vmlinux)
 *   diff     — parse the diff, apply it to copies of the touched files (diff.ts)
 *   lines    — keep the original line numbering in the patched copies (line-numbers.ts)
 *   units    — changed files → objects and their targets, headers → including units (units.ts)
 *   compile  — each unit twice, original and patched, with kbuild's exact command line (compile.ts)
 *   verify   — the original objects against the shipped vmlinux / debug modules (verify.ts)
 *   objdiff  — same / changed / new per function, refusals of what cannot be carried (objdiff.ts)
 *   module   — klp structures, klp relocations, kbuild link (livepatch-module.ts)
 *   manifest — the manifest next to the module (manifest/manifest.ts)
 *
 * A refusal (a rule of check/ says no) is not a crash: the pipeline throws BuildRefused carrying every
 * refusal diagnostic, so the CLI and the corpus runner can show each rule id. Warnings of the checks
 * (KLP-INLINE-SPREAD) do not stop the build: each is emitted as a `warning` progress event and kept in
 * the result (and in BuildRefused when something else refuses).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { ObjectFacts } from '../check/facts.js';
import { noChange } from '../check/object/no-change.js';
import { parseAuxInfo } from '../check/object/prototypes.js';
import { isRefusal, refuse } from '../check/refusal.js';
import { missingDefinitions } from '../check/source/missing-definitions.js';
import { structChanged } from '../check/source/struct-changed.js';
import { unitNotBuilt } from '../check/source/unit-not-built.js';
import { type Diagnostic, fail, SutureError } from '../diagnostic.js';
import { indexSymbols, readElfFile, type SymbolIndex } from '../elf/index.js';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { buildLivepatchModule } from '../klp/livepatch-module.js';
import { type Manifest, type PatchedObject, patchedObjectSchema } from '../manifest/manifest.js';
import { diffObjects, type ObjectDiff } from '../objdiff/objdiff.js';
import {
  type CompiledObject,
  CompileFailure,
  compileObject,
  missingDefinitions as missingNames,
  withoutSectionFlags,
} from '../source/compile.js';
import { applyDiff, checkFuzz, parseDiff, readDiff } from '../source/diff.js';
import { withLineDirectives } from '../source/line-numbers.js';
import { planUnits, type Unit, type UnitPlan } from '../source/units.js';
import { objectFunctions, shippedFromIndex, verifyAgainstShipped } from '../source/verify.js';

export const TOOL_VERSION = '0.1.0';

export const STAGES = [
  'kernel',
  'diff',
  'lines',
  'units',
  'compile',
  'verify',
  'objdiff',
  'module',
  'manifest',
] as const;
export type Stage = (typeof STAGES)[number];

export type BuildProgress =
  | { kind: 'stage-start'; stage: Stage }
  | { kind: 'stage-done'; stage: Stage; ms: number; summary: string }
  | { kind: 'note'; stage: Stage; text: string }
  /** a check that does not stop the build (e.g. KLP-INLINE-SPREAD), as soon as it is known */
  | { kind: 'warning'; stage: Stage; diagnostic: Diagnostic };

export interface BuildOptions {
  diffPath: string;
  release: string;
  /** livepatch name (default: from the diff's file name) */
  name?: string;
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
  /** use this target instead of ensureKernel(release) */
  target?: KernelTarget;
  onProgress?: (e: BuildProgress) => void;
}

export interface UnitResult {
  unit: Unit;
  original: CompiledObject;
  patched: CompiledObject;
  diff?: ObjectDiff;
  /** sympos of each changed function in the running kernel (0 = unique) */
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

/** Thrown by a stage the caller asked to stop after; never escapes buildLivepatch. */
class StopAfter extends Error {}

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

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Run every stage. Throws SutureError (BuildRefused for refusals) on the first stage that fails. */
export async function buildLivepatch(opts: BuildOptions): Promise<BuildResult> {
  const name = checkName(opts.name ?? defaultName(opts.diffPath));
  const emit = opts.onProgress ?? (() => undefined);
  const timings: BuildResult['timings'] = [];
  const stage = async <T>(s: Stage, fn: () => Promise<T> | T, summarize: (v: T) => string): Promise<T> => {
    emit({ kind: 'stage-start', stage: s });
    const t0 = performance.now();
    const v = await fn();
    const ms = performance.now() - t0;
    timings.push({ stage: s, ms });
    emit({ kind: 'stage-done', stage: s, ms, summary: summarize(v) });
    record(s, v);
    if ((opts.checkOnly ? 'module' : opts.stopAfter) === s) throw new StopAfter();
    return v;
  };

  // read and check the diff before anything slow (a cold kernel cache takes minutes)
  const { text: diffText } = readDiff(opts.diffPath);
  const fuzz = checkFuzz(opts.fuzz);
  const workDir = mkdtempSync(join(tmpdir(), `suture-build-${name}-`));
  const overlay = join(workDir, 'overlay');
  // what is known so far: returned as is when the caller asked to stop after a stage
  const result: BuildResult = {
    name,
    release: opts.release,
    plan: { units: [], headers: [], ignored: [] },
    units: [],
    timings,
    summary: [],
    warnings: [],
    workDir,
  };
  function record(s: Stage, v: unknown): void {
    if (s === 'kernel') result.release = (v as KernelTarget).release;
    if (s === 'units') result.plan = v as UnitPlan;
    if (s === 'compile') result.units = v as UnitResult[];
  }
  let keep = opts.keepWork === true;
  try {
    const target = await stage(
      'kernel',
      () =>
        opts.target ??
        ensureKernel(opts.release, {
          onProgress: (e) => {
            if (e.kind === 'step' && e.state !== 'start') {
              const took = e.ms === undefined ? '' : ` in ${(e.ms / 1000).toFixed(1)} s`;
              emit({ kind: 'note', stage: 'kernel', text: `${e.step}: ${e.state}${took}` });
            }
          },
        }),
      (t) => `${t.release} (Debian ${t.debianVersion}, build id ${t.buildId.slice(0, 12)}…)`,
    );
    const tree = target.sourceTree;
    const diff = parseDiff(diffText, opts.diffPath, tree);
    const applied = await stage(
      'diff',
      () => {
        const a = applyDiff(diff, tree, overlay, { fuzz });
        for (const w of a.flatMap((f) => f.warnings ?? [])) {
          result.warnings.push(w);
          emit({ kind: 'warning', stage: 'diff', diagnostic: w });
        }
        return a;
      },
      (a) =>
        `${a.length} file${a.length === 1 ? '' : 's'}, ${diff.files.reduce((n, f) => n + f.hunks.length, 0)} hunks, -p${diff.strip}` +
        (a.some((f) => f.notes.length) ? ` (${a.flatMap((f) => f.notes).join('; ')})` : ''),
    );
    await stage(
      'lines',
      () => {
        let n = 0;
        for (const f of applied) {
          if (!f.original || !f.patched || !/\.[ch]$/.test(f.path)) continue;
          const before = readFileSync(f.original, 'utf8');
          const after = readFileSync(f.patched, 'utf8');
          const text = withLineDirectives(before, after, f.path);
          // the patched text as the diff made it, for compiler messages with its own line numbers
          const raw = join(workDir, 'raw', f.path);
          mkdirSync(dirname(raw), { recursive: true });
          writeFileSync(raw, after);
          n += text.split('\n').length - after.split('\n').length - 1;
          writeFileSync(f.patched, text);
        }
        return n;
      },
      (n) => `${n} #line directive${n === 1 ? '' : 's'}`,
    );
    const plan = await stage(
      'units',
      () => planUnits(applied, target),
      (p) =>
        [
          p.units.map((u) => `${u.object} → ${u.target}`).join(', '),
          ...p.headers.map((h) => `${h.header} → ${h.candidates.join(', ') || 'no unit'}`),
          ...p.ignored.map((i) => `${i.path} ignored (${i.why})`),
        ].join('; '),
    );
    for (const h of plan.headers) {
      emit({
        kind: 'note',
        stage: 'units',
        text: `header ${h.header} is included by: ${h.candidates.join(', ')}`,
      });
    }

    const indexes = new Map<string, SymbolIndex>();
    const results = await stage(
      'compile',
      () =>
        compileAll(plan.units, tree, overlay, workDir, async (u) => {
          const idx = await shippedIndex(target, u, indexes);
          return idx.localsInFile(basename(u.source)).length > 0;
        }),
      (r) =>
        r
          .map(
            (u) =>
              `${u.unit.object} ${(u.original.ms / 1000).toFixed(1)} s + ${(u.patched.ms / 1000).toFixed(1)} s`,
          )
          .join(', '),
    );
    // units that turned out not to include a changed header are dropped (their dependency file says so)
    const units = results.filter(
      (r) => r.unit.patchedSource || r.unit.viaHeaders.some((h) => r.original.deps.includes(h)),
    );
    result.units = units;

    await stage(
      'verify',
      async () => {
        for (const r of units) {
          const idx = await shippedIndex(target, r.unit, indexes);
          const shipped = shippedFromIndex(idx);
          const ours = objectFunctions(await readElfFile(r.original.object));
          let group: number | undefined;
          try {
            ({ group } = verifyAgainstShipped(ours, shipped, r.unit.source));
          } catch (e) {
            if (!(e instanceof SutureError) || e.code !== 'VERIFY-MISMATCH') throw e;
            // -ffunction-sections alone can change sizes (a jump to another section cannot be relaxed to
            // a short one): the exact kbuild command, without our section flags, must then match exactly
            const exact = await compileObject({
              tree,
              recipe: { ...r.unit.recipe, cc: withoutSectionFlags(r.unit.recipe.cc) },
              outObject: join(workDir, 'exact', r.unit.object),
            });
            ({ group } = verifyAgainstShipped(
              objectFunctions(await readElfFile(exact.object)),
              shipped,
              r.unit.source,
            ));
            emit({
              kind: 'note',
              stage: 'verify',
              text: `${r.unit.object} matches when built exactly as kbuild does; with section flags only the layout differs (${(e.diagnostic.detail ?? []).join('; ')})`,
            });
          }
          r.sympos = symposOf(idx, r.unit.source, group);
        }
        return units.length;
      },
      (n) => `${n} object${n === 1 ? '' : 's'} match the shipped binary`,
    );

    const summary = result.summary;
    await stage(
      'objdiff',
      async () => {
        for (const r of units) {
          r.diff = await diffObjects(r.original.object, r.patched.object, {
            source: r.unit.source,
            prototypes: readPrototypes(r),
          });
          const obj = basename(r.unit.object);
          for (const f of r.diff.functions) {
            if (f.change === 'changed' || f.change === 'new') {
              summary.push(`${obj}: ${f.change} function: ${f.name}${f.reason ? ` (${f.reason})` : ''}`);
            }
          }
          for (const w of r.diff.warnings) {
            result.warnings.push(w);
            emit({ kind: 'warning', stage: 'objdiff', diagnostic: w });
          }
        }
        // refusals and "nothing changed" end the build here, even when asked to stop after this stage
        const refusals = [
          ...structChanged(
            applied
              .filter((f) => f.kind === 'modify' && /\.[ch]$/.test(f.path) && existsSync(join(tree, f.path)))
              .map((f) => ({
                path: f.path,
                original: readFileSync(join(tree, f.path), 'utf8'),
                hunks: f.hunks ?? diff.files.find((d) => d.path === f.path)!.hunks,
              })),
          ),
          ...units.flatMap((r) => r.diff?.refusals ?? []),
        ];
        if (refusals.length) throw new BuildRefused(refusals, { summary, warnings: result.warnings });
        const unchanged = noChange.check(
          units.map((r) => ({ object: basename(r.unit.object), functions: r.diff?.facts.functions ?? [] })),
          summary,
        );
        if (unchanged.length) refuse(unchanged[0]!);
        return summary;
      },
      (s) => `${s.length} function${s.length === 1 ? '' : 's'} to carry`,
    );
    const outDir = resolve(opts.outDir ?? '.');
    mkdirSync(outDir, { recursive: true });
    const mod = await stage(
      'module',
      () =>
        linkModule({
          name,
          replace: opts.replace === true,
          target,
          units,
          outDir,
          workDir,
          rulesOnly: opts.checkOnly,
        }),
      (m) => m.ko || 'module rules passed (nothing linked)',
    );
    result.ko = mod.ko;

    await stage(
      'manifest',
      () => {
        const manifest = makeManifest({
          name,
          replace: opts.replace === true,
          target,
          units,
          ko: mod.ko,
          diffText,
          objects: mod.manifestObjects,
        });
        const path = join(outDir, `livepatch-${name}.manifest.json`);
        writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
        result.manifest = manifest;
        result.manifestPath = path;
        return path;
      },
      (p) => p,
    );
    return result;
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

/** Both units' prototypes (gcc -aux-info next to each object), for KLP-SIGNATURE-CHANGED. */
function readPrototypes(r: UnitResult): ObjectFacts['prototypes'] {
  const read = (o: CompiledObject) =>
    existsSync(o.prototypes) ? parseAuxInfo(readFileSync(o.prototypes, 'utf8')) : undefined;
  const original = read(r.original);
  const patched = read(r.patched);
  return original && patched ? { original, patched } : undefined;
}

/** Original and patched compile of every unit, two at a time (the machine's cores). */
async function compileAll(
  units: Unit[],
  tree: string,
  overlay: string,
  workDir: string,
  isShipped: (u: Unit) => Promise<boolean>,
): Promise<UnitResult[]> {
  const jobs: (() => Promise<void>)[] = [];
  const out: UnitResult[] = [];
  for (const unit of units) {
    const r = { unit, sympos: new Map() } as unknown as UnitResult;
    out.push(r);
    const patchedSource = unit.patchedSource ?? copyForHeaders(tree, overlay, unit);
    jobs.push(async () => {
      try {
        r.original = await compileObject({
          tree,
          recipe: unit.recipe,
          outObject: join(workDir, 'original', unit.object),
        });
      } catch (e) {
        // the unmodified source does not compile with the image's config: is the unit built at all?
        if (e instanceof CompileFailure && !(await isShipped(unit))) {
          refuse(unitNotBuilt.configOff(unit.source, unit.target, e.diagnostic.detail));
        }
        throw e;
      }
    });
    jobs.push(async () => {
      try {
        r.patched = await compileObject({
          tree,
          recipe: unit.recipe,
          outObject: join(workDir, 'patched', unit.object),
          source: patchedSource,
          overlay,
        });
      } catch (e) {
        if (e instanceof CompileFailure) {
          const f = await explainFailure(e, { tree, unit, overlay, workDir });
          const missing = missingNames(f.stderr);
          if (missing.length) refuse(missingDefinitions.diagnose(unit.source, missing, f.diagnostic.detail));
          throw f;
        }
        throw e;
      }
    });
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/**
 * The patched copy carries #line directives, so the compiler quotes the ORIGINAL file's lines in its
 * errors. Compile the patched text as the diff made it instead, so the messages show the patched lines
 * with the patched file's numbering.
 */
async function explainFailure(
  e: CompileFailure,
  c: { tree: string; unit: Unit; overlay: string; workDir: string },
): Promise<CompileFailure> {
  const rawDir = join(c.workDir, 'raw');
  const raw = join(rawDir, c.unit.source);
  if (!existsSync(raw)) return e;
  try {
    await compileObject({
      tree: c.tree,
      recipe: c.unit.recipe,
      outObject: join(c.workDir, 'raw-out', c.unit.object),
      source: raw,
      overlay: c.overlay,
    });
    return e;
  } catch (again) {
    if (!(again instanceof CompileFailure)) return e;
    const clean = (t: string) => t.split(`${rawDir}/`).join('');
    return new CompileFailure(clean(again.stderr), {
      ...again.diagnostic,
      message: `${c.unit.source} does not compile after patching (line numbers of the patched file)`,
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

async function shippedIndex(
  target: KernelTarget,
  unit: Unit,
  cache: Map<string, SymbolIndex>,
): Promise<SymbolIndex> {
  const path = unit.modulePath ? join(target.debugModulesDir, unit.modulePath) : target.vmlinux;
  let idx = cache.get(path);
  if (!idx) {
    idx = await indexSymbols(path);
    cache.set(path, idx);
  }
  return idx;
}

/** sympos of each function of the matched file group (locals) and of globals, as the livepatch core counts. */
function symposOf(idx: SymbolIndex, source: string, group: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const g = group === undefined ? undefined : idx.localsInFile(basename(source))[group];
  for (const s of g?.symbols ?? []) out.set(s.name, s.sympos);
  return out;
}

interface LinkRequest {
  name: string;
  replace: boolean;
  target: KernelTarget;
  units: UnitResult[];
  outDir: string;
  workDir: string;
  rulesOnly?: boolean;
}

interface LinkedModule {
  ko: string;
  manifestObjects?: PatchedObject[];
}

/** The module stage: klp structures, klp relocations and the kbuild link (livepatch-module.ts). */
async function linkModule(req: LinkRequest): Promise<LinkedModule> {
  return buildLivepatchModule({
    name: req.name,
    replace: req.replace,
    target: req.target,
    outDir: req.outDir,
    workDir: req.workDir,
    rulesOnly: req.rulesOnly,
    units: req.units.map((u) => ({
      source: u.unit.source,
      object: u.unit.object,
      target: u.unit.target,
      originalObject: u.original.object,
      patchedObject: u.patched.object,
      diff: u.diff!,
      sympos: u.sympos,
      modulePath: u.unit.modulePath,
    })),
  });
}

/** The manifest: what the module replaces, for which exact kernel, made from which diff. */
export function makeManifest(m: {
  name: string;
  replace: boolean;
  target: KernelTarget;
  units: UnitResult[];
  ko: string;
  diffText: string;
  /** what the module stage says it replaces; derived from the object diffs when absent */
  objects?: PatchedObject[];
}): Manifest {
  const objects = new Map<string, PatchedObject>();
  for (const o of m.objects ?? []) objects.set(o.name, o);
  for (const u of m.objects?.length ? [] : m.units) {
    const o = objects.get(u.unit.target) ?? { name: u.unit.target, functions: [] };
    objects.set(u.unit.target, o);
    for (const f of u.diff?.functions ?? []) {
      if (f.change !== 'changed' && f.change !== 'new') continue;
      const old = f.originalName ?? f.name;
      o.functions.push({
        name: f.change === 'changed' ? old : f.name,
        sympos: f.change === 'changed' ? (u.sympos.get(old) ?? 0) : 0,
        file: u.unit.source,
        change: f.change,
      });
    }
  }
  return {
    schema: 1,
    name: m.name,
    version: '1',
    kernel: { release: m.target.release, buildId: m.target.buildId, debianVersion: m.target.debianVersion },
    replace: m.replace,
    objects: manifestSchemaObjects([...objects.values()]),
    module: {
      file: basename(m.ko),
      sha256: sha256(readFileSync(m.ko)),
      name: `livepatch_${m.name.replace(/-/g, '_')}`,
    },
    source: { diffSha256: sha256(m.diffText) },
    cves: [],
    tool: { name: 'suture', version: TOOL_VERSION },
    createdAt: new Date().toISOString(),
  };
}

/** Validate the objects through the manifest schema's own parser (parse, don't trust our own output). */
function manifestSchemaObjects(objects: PatchedObject[]): PatchedObject[] {
  return objects.map((o) => patchedObjectSchema.parse(o));
}

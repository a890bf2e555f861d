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
 * The bodies of the stages are in source-stages.ts (kernel … verify) and object-stages.ts (objdiff,
 * module, manifest); the options, the result and the state they share are build.ts's.
 *
 * A refusal (a rule of check/ says no) is not a crash: the pipeline throws BuildRefused carrying every
 * refusal diagnostic, so the CLI and the corpus runner can show each rule id. `checkOnly` (`suture
 * check`) runs the module stage's rules without linking and stops there. Warnings of the checks
 * (DIFF-OFFSET, DIFF-FUZZ under `fuzz`, KLP-INLINE-SPREAD, KLP-MODULE-TRACEPOINT-INERT unless `strict`)
 * do not stop the build: each is emitted as a `warning` progress event and kept in the result (and in
 * BuildRefused, refused.ts, when something else refuses).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRefusal } from '../check/refusal.js';
import { SutureError } from '../diagnostic.js';
import { ShippedSymbols } from '../klp/shipped-symbols.js';
import { unitsReallyChanged } from '../source/compile-units.js';
import { checkFuzz, parseDiff, readDiff } from '../source/diff.js';
import { writeLineDirectives } from '../source/line-numbers.js';
import type { Build, BuildOptions, BuildResult } from './build.js';
import { checkName, defaultName } from './name.js';
import { manifestStage, moduleStage, objdiffStage } from './object-stages.js';
import { BuildRefused } from './refused.js';
import { compileStage, diffStage, kernelStage, unitsStage, verifyStage } from './source-stages.js';
import { StageRunner, StopAfter } from './stages.js';
import {
  count,
  describeApplied,
  describeCompiled,
  describePlan,
  describeTarget,
  describeVerified,
} from './summaries.js';

export type { BuildOptions, BuildResult, UnitResult } from './build.js';
export { DEFAULT_PATCH_VERSION, makeManifest } from './manifest.js';
export { checkName, defaultName } from './name.js';
export { BuildRefused } from './refused.js';
export { type BuildProgress, STAGES, type Stage } from './stages.js';

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

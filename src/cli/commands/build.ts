/*
 * `suture build <patch.diff> --kernel <release> [--name NAME] [--patch-version V] [--replace] [-o DIR] [--fuzz N]
 *   [--strict] [--json]`
 *
 * Turns a source diff into `livepatch-NAME.ko` plus `livepatch-NAME.manifest.json` for one exact kernel.
 * Progress goes to stderr, one line per stage with its time; the summary (each changed and new function,
 * `meminfo.o: changed function: meminfo_proc_show`) goes to stdout, or the whole result as JSON with
 * --json. Refusals are printed as diagnostics (rule id, where, why, what to do) and exit with status 2;
 * other errors exit 1. Warnings (a hunk applied at an offset or with the fuzz `--fuzz N` allows,
 * KLP-INLINE-SPREAD, a module's tracepoint left inert — a refusal under `--strict`) are printed compiler-style to stderr as soon as the diff and objdiff stages find
 * them, and listed under `warnings` in --json (refused or not).
 */
import type { Command } from 'commander';
import { renderDiagnostic, SutureError, toDiagnostic } from '../../diagnostic.js';
import { defaultRelease } from '../../kernel/target.js';
import {
  type BuildProgress,
  BuildRefused,
  type BuildResult,
  buildLivepatch,
  STAGES,
  type Stage,
} from '../../pipeline/pipeline.js';

interface BuildCliOptions {
  kernel?: string;
  name?: string;
  patchVersion?: string;
  replace?: boolean;
  output?: string;
  json?: boolean;
  keepWork?: boolean;
  stopAfter?: string;
  fuzz?: string;
  strict?: boolean;
}

/** `--fuzz N`: a whole number of context lines, 0 to 3 (the pipeline checks the range too). */
export function fuzzOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 3) {
    throw new SutureError({
      code: 'CLI-BAD-OPTION',
      message: `--fuzz ${value} is not a fuzz GNU patch allows here`,
      why: 'beyond 3 ignored context lines a hunk is matched by its changed lines alone and can land anywhere they repeat',
      hint: 'use --fuzz 1, 2 or 3 (the number of context lines a hunk may ignore), or regenerate the diff',
    });
  }
  return Number(value);
}

export function progressPrinter(write: (s: string) => void, color = false): (e: BuildProgress) => void {
  return (e) => {
    if (e.kind === 'warning') {
      // compiler-style, as soon as the check reports it
      write(`${renderDiagnostic(e.diagnostic, color)}\n`);
      return;
    }
    const n = STAGES.indexOf(e.stage) + 1;
    if (e.kind === 'stage-done') {
      write(
        `  [${n}/${STAGES.length}] ${e.stage.padEnd(8)} ${(e.ms / 1000).toFixed(2).padStart(6)} s  ${e.summary}\n`,
      );
    } else if (e.kind === 'note') {
      write(`      ${e.text}\n`);
    }
  };
}

export function resultJson(r: BuildResult): unknown {
  return {
    name: r.name,
    kernel: r.release,
    module: r.ko ?? null,
    manifest: r.manifestPath ?? null,
    timings: Object.fromEntries(r.timings.map((t) => [t.stage, Math.round(t.ms)])),
    units: r.units.map((u) => ({
      source: u.unit.source,
      object: u.unit.object,
      target: u.unit.target,
      viaHeaders: u.unit.viaHeaders,
      functions: (u.diff?.functions ?? []).map((f) => ({
        name: f.name,
        change: f.change,
        reason: f.reason,
        sympos: f.change === 'changed' ? (u.sympos.get(f.originalName ?? f.name) ?? 0) : undefined,
      })),
      warnings: u.diff?.warnings ?? [],
    })),
    headers: r.plan.headers,
    ignored: r.plan.ignored,
    summary: r.summary,
    warnings: r.warnings,
  };
}

export function register(program: Command): void {
  program
    .command('build')
    .description('build a livepatch module and its manifest from a source diff against a known kernel')
    .argument('<patch.diff>', 'unified diff (git or plain) against the kernel source')
    .option('-k, --kernel <release>', 'target kernel release (uname -r)', defaultRelease())
    .option('-n, --name <name>', 'livepatch name (default: from the diff file name)')
    .option(
      '--patch-version <version>',
      "the livepatch's version in its manifest (e.g. 2, 2026.11.24-1)",
      '1',
    )
    .option('--replace', 'cumulative patch: replaces every livepatch loaded before it')
    .option('-o, --output <dir>', 'directory for livepatch-NAME.ko and its manifest', '.')
    .option('--json', 'print the result as JSON on stdout')
    .option('--keep-work', 'keep the scratch directory (overlay, objects) and print its path')
    .option('--stop-after <stage>', `stop after a stage (${STAGES.join(', ')})`)
    .option(
      '--fuzz <N>',
      'accept hunks that apply only ignoring up to N (≤ 3) context lines, as patch --fuzz',
    )
    .option('--strict', "refuse what would be carried with a loss (a module's tracepoint left inert)")
    .action(async (diffPath: string, opts: BuildCliOptions) => {
      const fuzz = fuzzOption(opts.fuzz);
      if (opts.stopAfter && !STAGES.includes(opts.stopAfter as Stage)) {
        throw new SutureError({
          code: 'CLI-BAD-OPTION',
          message: `--stop-after ${opts.stopAfter} is not a stage`,
          hint: `use one of ${STAGES.join(', ')}`,
        });
      }
      const t0 = performance.now();
      const progress = progressPrinter((s) => process.stderr.write(s), process.stderr.isTTY === true);
      let r: BuildResult;
      try {
        r = await buildLivepatch({
          diffPath,
          release: opts.kernel ?? defaultRelease(),
          name: opts.name,
          version: opts.patchVersion,
          replace: opts.replace === true,
          outDir: opts.output,
          keepWork: opts.keepWork === true,
          stopAfter: opts.stopAfter as Stage | undefined,
          fuzz,
          strict: opts.strict === true,
          onProgress: progress,
        });
      } catch (e) {
        if (e instanceof BuildRefused) {
          const color = process.stderr.isTTY === true;
          for (const d of e.refusals) process.stderr.write(`${renderDiagnostic(d, color)}\n`);
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify({ refused: true, refusals: e.refusals, warnings: e.warnings, summary: e.diagnostic.detail ?? [] }, null, 2)}\n`,
            );
          }
          process.stderr.write(`${renderDiagnostic(e.diagnostic, color)}\n`);
          process.exitCode = 2;
          return;
        }
        if (opts.json) process.stdout.write(`${JSON.stringify({ error: toDiagnostic(e) }, null, 2)}\n`);
        throw e;
      }
      const total = ((performance.now() - t0) / 1000).toFixed(1);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(resultJson(r), null, 2)}\n`);
        return;
      }
      for (const line of r.summary) process.stdout.write(`${line}\n`);
      if (r.warnings.length) process.stderr.write(`${r.warnings.length} warning(s), shown above\n`);
      if (r.ko) process.stdout.write(`built ${r.ko} in ${total} s\n`);
      if (r.manifestPath) process.stdout.write(`manifest ${r.manifestPath}\n`);
      if (opts.keepWork) process.stdout.write(`work directory ${r.workDir}\n`);
    });
}

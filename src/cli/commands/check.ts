/*
 * `suture check <patch.diff> [--kernel <release>] [--fuzz N] [--strict] [--json]` — the pre-flight for review.
 *
 * Runs the build pipeline itself (buildLivepatch with `checkOnly`: every stage and every rule of check/,
 * source, object and module, up to the module stage, which links nothing and writes nothing), so its
 * verdict is `suture build`'s verdict, minus the kbuild link and the manifest. Progress and diagnostics
 * go to stderr compiler-style (`file:line: error[RULE]: ...` with why and hint); stdout gets what would
 * be replaced and a verdict line, or the whole verdict as JSON with --json. Exit status: 0 when the patch
 * can be built, 2 when a rule refuses it, 1 for other errors (the diff does not apply, a unit does not
 * compile). `suture explain RULE` tells more about any rule named.
 */
import type { Command } from 'commander';
import type { Diagnostic } from '../../diagnostic.js';
import { renderDiagnostic, toDiagnostic } from '../../diagnostic.js';
import { defaultRelease } from '../../kernel/target.js';
import { BuildRefused, type BuildResult, buildLivepatch } from '../../pipeline/pipeline.js';
import { fuzzOption, progressPrinter } from './build.js';

interface CheckCliOptions {
  kernel?: string;
  fuzz?: string;
  json?: boolean;
  strict?: boolean;
}

export interface CheckVerdict {
  verdict: 'ok' | 'refused';
  kernel: string;
  /** `meminfo.o: changed function: meminfo_proc_show`, one per function the module would carry */
  summary: string[];
  refusals: Diagnostic[];
  warnings: Diagnostic[];
  timings: Record<string, number>;
}

/** The verdict of a check run: built up to the module rules, or refused by a rule. */
export function checkVerdict(outcome: BuildResult | BuildRefused, release: string): CheckVerdict {
  if (outcome instanceof BuildRefused) {
    return {
      verdict: 'refused',
      kernel: release,
      summary: outcome.diagnostic.detail ?? [],
      refusals: outcome.refusals,
      warnings: outcome.warnings,
      timings: {},
    };
  }
  return {
    verdict: 'ok',
    kernel: outcome.release,
    summary: outcome.summary,
    refusals: [],
    warnings: outcome.warnings,
    timings: Object.fromEntries(outcome.timings.map((t) => [t.stage, Math.round(t.ms)])),
  };
}

/** The closing line: what the verdict is, with the rule ids to look up. */
export function verdictLine(v: CheckVerdict, diffPath: string): string {
  const w = v.warnings.length ? `, ${v.warnings.length} warning${v.warnings.length === 1 ? '' : 's'}` : '';
  if (v.verdict === 'refused') {
    const ids = [...new Set(v.refusals.map((r) => r.code))];
    return `${diffPath}: refused by ${ids.join(', ')}${w} (suture explain ${ids[0]})`;
  }
  const n = v.summary.length;
  return `${diffPath}: can be livepatched: ${n} function${n === 1 ? '' : 's'} to carry${w}`;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('check that a diff can be livepatched: every stage and rule of build, no module written')
    .argument('<patch.diff>', 'unified diff (git or plain) against the kernel source')
    .option('-k, --kernel <release>', 'target kernel release (uname -r)', defaultRelease())
    .option(
      '--fuzz <N>',
      'accept hunks that apply only ignoring up to N (≤ 3) context lines, as patch --fuzz',
    )
    .option('--json', 'print the verdict as JSON on stdout')
    .option('--strict', "refuse what build would carry with a loss (a module's tracepoint left inert)")
    .action(async (diffPath: string, opts: CheckCliOptions) => {
      const fuzz = fuzzOption(opts.fuzz);
      const release = opts.kernel ?? defaultRelease();
      const color = process.stderr.isTTY === true;
      let outcome: BuildResult | BuildRefused;
      try {
        outcome = await buildLivepatch({
          diffPath,
          release,
          fuzz,
          checkOnly: true,
          strict: opts.strict === true,
          onProgress: progressPrinter((s) => process.stderr.write(s), color),
        });
      } catch (e) {
        if (!(e instanceof BuildRefused)) {
          if (opts.json) process.stdout.write(`${JSON.stringify({ error: toDiagnostic(e) }, null, 2)}\n`);
          throw e;
        }
        outcome = e;
      }
      const v = checkVerdict(outcome, release);
      for (const d of v.refusals) process.stderr.write(`${renderDiagnostic(d, color)}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
      else {
        for (const line of v.summary) process.stdout.write(`${line}\n`);
        process.stdout.write(`${verdictLine(v, diffPath)}\n`);
      }
      if (v.verdict === 'refused') process.exitCode = 2;
    });
}

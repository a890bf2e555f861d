/*
 * `suture check` against `suture build` over the corpus (`npm run corpus:check`): for every stable fix,
 * the verdict of a full build (no VM) and of a check run (buildLivepatch with `checkOnly`), their times,
 * and whether they agree. A check that says "can be built" where the build fails or is refused — or the
 * reverse — is a disagreement, and the run exits 1. Check's time is its whole run; the ratio is printed,
 * never asserted (the compile cache favours whichever runs second: the build runs first here).
 *
 * Usage: node dist/pipeline/corpus-check.js [FILTER...]   (FILTER: substrings of patch file names)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toDiagnostic } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { CORPUS_DIR, CORPUS_RELEASE, corpusFiles } from './corpus.js';
import { BuildRefused, buildLivepatch } from './pipeline.js';

export interface Agreement {
  patch: string;
  build: string;
  check: string;
  buildMs: number;
  checkMs: number;
}

/** `built`, `refused RULE,RULE` or `failed CODE`: what one run of the pipeline says about a fix. */
export async function verdictOf(
  target: KernelTarget,
  diffPath: string,
  opts: { checkOnly: boolean; outDir: string },
): Promise<{ verdict: string; ms: number }> {
  const t0 = performance.now();
  let verdict = 'built';
  try {
    await buildLivepatch({
      diffPath,
      release: target.release,
      target,
      name: 'corpus_check',
      outDir: opts.outDir,
      checkOnly: opts.checkOnly,
    });
  } catch (e) {
    verdict =
      e instanceof BuildRefused
        ? `refused ${[...new Set(e.refusals.map((d) => d.code))].sort().join(',')}`
        : `failed ${toDiagnostic(e).code}`;
  }
  return { verdict, ms: performance.now() - t0 };
}

export function formatAgreement(rows: Agreement[]): string {
  const lines = rows.map(
    (r) =>
      `${r.patch.padEnd(40)} ${r.build === r.check ? 'same' : 'DIFFERENT'}  build ${(r.buildMs / 1000).toFixed(1).padStart(6)} s  check ${(r.checkMs / 1000).toFixed(1).padStart(6)} s  ${r.build}${r.build === r.check ? '' : ` / check: ${r.check}`}`,
  );
  const same = rows.filter((r) => r.build === r.check).length;
  const sum = (k: 'buildMs' | 'checkMs') => rows.reduce((n, r) => n + r[k], 0) / 1000;
  return [
    ...lines,
    '',
    `corpus check: ${same} of ${rows.length} verdicts the same; build ${sum('buildMs').toFixed(1)} s, check ${sum('checkMs').toFixed(1)} s in all (ratio ${(sum('checkMs') / Math.max(sum('buildMs'), 0.001)).toFixed(2)})`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const target = await ensureKernel(process.env.SUTURE_KERNEL ?? CORPUS_RELEASE);
  const out = mkdtempSync(join(tmpdir(), 'suture-corpus-check-'));
  const rows: Agreement[] = [];
  try {
    for (const patch of corpusFiles(
      CORPUS_DIR,
      argv.filter((a) => !a.startsWith('--')),
    )) {
      const path = join(CORPUS_DIR, patch);
      const build = await verdictOf(target, path, { checkOnly: false, outDir: out });
      const check = await verdictOf(target, path, { checkOnly: true, outDir: out });
      const row = { patch, build: build.verdict, check: check.verdict, buildMs: build.ms, checkMs: check.ms };
      rows.push(row);
      process.stderr.write(`${formatAgreement([row]).split('\n')[0]}\n`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  process.stdout.write(`${formatAgreement(rows)}\n`);
  return rows.every((r) => r.build === r.check) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(toDiagnostic(e));
      process.exit(70);
    },
  );
}

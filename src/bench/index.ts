/*
 * `npm run bench`: runs every benchmark module of this folder (`<topic>.bench.js`) and prints rows as
 * ratios against baselines measured in the same run (see harness.ts). Nothing here asserts a time.
 * Usage: npm run bench [-- WORD...]  (or SUTURE_BENCH=word,word) runs only benchmarks whose
 * `topic/name` contains one of the words.
 */

import { readdirSync } from 'node:fs';
import { isSutureError } from '../diagnostic.js';
import { type BenchContext, type Benchmark, renderRow } from './harness.js';

async function main(): Promise<number> {
  const words = [...process.argv.slice(2), ...(process.env.SUTURE_BENCH ?? '').split(',').filter(Boolean)];
  const runs = Number(process.env.SUTURE_BENCH_RUNS ?? '5');
  const dir = new URL('./', import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.bench.js'))
    .sort();
  let failed = 0;
  for (const f of files) {
    const topic = f.replace(/\.bench\.js$/, '');
    let mod: { benchmarks?: Benchmark[] };
    try {
      mod = (await import(new URL(f, dir).href)) as { benchmarks?: Benchmark[] };
    } catch (e) {
      failed++;
      console.log(`\n${topic}: cannot load: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    for (const b of mod.benchmarks ?? []) {
      const id = `${topic}/${b.name}`;
      if (words.length && !words.some((w) => id.includes(w))) continue;
      console.log(`\n${id}`);
      const ctx: BenchContext = {
        runs,
        report: (row) => console.log(renderRow(row)),
        skip: (reason) => console.log(`  skipped: ${reason}`),
      };
      try {
        await b.run(ctx);
      } catch (e) {
        failed++;
        console.log(`  failed: ${e instanceof Error ? e.message : String(e)}`);
        for (const line of isSutureError(e) ? (e.diagnostic.detail ?? []) : []) console.log(`    ${line}`);
      }
    }
  }
  return failed ? 1 : 0;
}

main().then((code) => {
  process.exitCode = code;
});

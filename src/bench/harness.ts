/*
 * Benchmarks: how Suture states its performance goals.
 *
 * A goal is never a timed assertion in a test (machines differ, CI is noisy); it is a benchmark that
 * measures our time and a baseline's time in the same run, on the same machine, and prints the ratio.
 * `npm run bench` runs every `*.bench.js` module of this folder; each exports `benchmarks`, a list of
 * named functions that receive a BenchContext and report rows. `SUTURE_BENCH=elf,vm` runs only the
 * benchmarks whose name contains one of those words; `SUTURE_BENCH_RUNS` sets the default run count.
 *
 * A row is one measurement: our median, optionally a baseline median (ratio = ours / baseline, so < 1
 * means we are faster) and optionally a goal (printed as met / not met, never asserted).
 */
import { performance } from 'node:perf_hooks';

export interface BenchRow {
  /** what was measured, e.g. `index vmlinux symbols` */
  name: string;
  /** our median (ms unless `unit` says otherwise) */
  ours: number;
  /** the baseline measured in the same run, with what it is */
  baseline?: { name: string; value: number };
  unit?: string;
  /** a goal in the same unit; `lowerIsBetter` defaults to true */
  goal?: { value: number; lowerIsBetter?: boolean; text?: string };
  /** free text: sample size, spread, environment */
  note?: string;
}

export interface BenchContext {
  /** default number of runs for a median */
  runs: number;
  report(row: BenchRow): void;
  /** say why a benchmark could not run (a missing prerequisite), instead of failing silently */
  skip(reason: string): void;
}

export interface Benchmark {
  name: string;
  run(ctx: BenchContext): Promise<void>;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/** Run `fn` `n` times (after `warmup` unmeasured runs) and return the wall times in ms. */
export async function timeRuns(n: number, fn: () => unknown, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (unit === 'ms' && v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${unit}`;
}

/** One line per row: `name: ours (baseline: value, ratio x) [goal met]`. */
export function renderRow(row: BenchRow): string {
  const unit = row.unit ?? 'ms';
  let s = `  ${row.name}: ${fmt(row.ours, unit)}`;
  if (row.baseline) {
    const ratio = row.ours / row.baseline.value;
    s += `  vs ${row.baseline.name} ${fmt(row.baseline.value, unit)}  ratio ${ratio.toFixed(2)}`;
  }
  if (row.goal) {
    const lower = row.goal.lowerIsBetter ?? true;
    const met = lower ? row.ours <= row.goal.value : row.ours >= row.goal.value;
    s += `  goal ${row.goal.text ?? `${lower ? '≤' : '≥'} ${fmt(row.goal.value, unit)}`}: ${met ? 'met' : 'NOT met'}`;
  }
  if (row.note) s += `  (${row.note})`;
  return s;
}

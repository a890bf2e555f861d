/*
 * `suture build` on the blog's meminfo patch, per stage.
 *   - warm: the kernel cache is complete (packages, prepared tree, debug vmlinux); kbuild's recipe for
 *     the unit is asked anew on the first run and remembered after, so both are shown.
 *   - cold: the packages are downloaded but nothing is extracted or prepared: a fresh cache directory
 *     holding only the downloaded .debs (hard links), so ensureKernel extracts and prepares everything.
 *   - warm against the previous commit: the same warm build through the CLI of this checkout and of
 *     the commit before it (previous-commit.ts), interleaved run by run, so a refactoring shows its
 *     ratio (issue 9: "no build-time regression").
 *   - 6.12 lines: the same warm build (the VmallocChunk change made against each tree's meminfo.c) on
 *     6.12.117+deb12 (host gcc-12) and 6.12.117+deb13 (gcc-14 in the trixie build root), as a ratio
 *     to the 6.1 build measured in the same run (issue 10; printed, not asserted).
 * Goals (issue 5, 2 cores): warm ≤ 20 s, cold ≤ 2 min. kpatch-build needs a full kernel build for the
 * same patch (tens of minutes here); that is not re-measured, the goal stands for it.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { cacheRoot, withCacheRoot } from '../kernel/cache.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { buildLivepatch, type Stage } from '../pipeline/pipeline.js';
import { type Benchmark, median } from './harness.js';
import { builtCommit } from './previous-commit.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');

async function timedBuild(
  outDir: string,
  release = defaultRelease(),
  diffPath = MEMINFO,
): Promise<{ total: number; stages: Map<Stage, number> }> {
  const t0 = performance.now();
  const r = await buildLivepatch({ diffPath, release, name: 'meminfo', outDir });
  return { total: performance.now() - t0, stages: new Map(r.timings.map((t) => [t.stage, t.ms])) };
}

/** One `suture build` of the meminfo patch through a CLI, in a fresh process; its wall time in ms. */
function timedCliBuild(cli: string, outDir: string): number {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [cli, 'build', MEMINFO, '--name', 'meminfo', '-o', outDir, '--json'],
    {
      encoding: 'utf8',
    },
  );
  const ms = performance.now() - t0;
  if (r.status !== 0)
    throw new Error(`${cli} build failed (${r.status}): ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  return ms;
}

const LINES_612 = ['6.12.117+deb12-cloud-amd64', '6.12.117+deb13-cloud-amd64'];

/** The blog's one-line change against `release`'s own meminfo.c (6.12's lines differ from 6.1's). */
function meminfoDiffFor(release: string, tree: string, dir: string): string {
  const file = 'fs/proc/meminfo.c';
  const text = readFileSync(join(tree, file), 'utf8');
  const path = join(dir, `${release}.patch`);
  writeFileSync(
    path,
    createTwoFilesPatch(
      `a/${file}`,
      `b/${file}`,
      text,
      text.replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "'),
    ),
  );
  return path;
}

const warm612: Benchmark = {
  name: 'meminfo warm on 6.12',
  async run(ctx) {
    if (!existsSync(MEMINFO)) return ctx.skip(`${MEMINFO} is missing`);
    await ensureKernel(defaultRelease());
    const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));
    try {
      await timedBuild(out); // recipes remembered: every build below is warm
      const base: number[] = [];
      for (let i = 0; i < ctx.runs; i++) base.push((await timedBuild(out)).total);
      for (const release of LINES_612) {
        const t = await ensureKernel(release);
        const diff = meminfoDiffFor(release, t.sourceTree, out);
        await timedBuild(out, release, diff);
        const runs: number[] = [];
        for (let i = 0; i < ctx.runs; i++) runs.push((await timedBuild(out, release, diff)).total);
        ctx.report({
          name: `warm build on ${release}`,
          ours: median(runs),
          baseline: { name: defaultRelease(), value: median(base) },
          note: `${ctx.runs} runs each`,
        });
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
};

export const benchmarks: Benchmark[] = [
  {
    name: 'meminfo warm',
    async run(ctx) {
      if (!existsSync(MEMINFO)) return ctx.skip(`${MEMINFO} is missing`);
      await ensureKernel(defaultRelease());
      const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));
      try {
        // first run with kbuild's recipe forgotten, then the remembered runs
        rmSync(join(cacheRoot(), 'recipes'), { recursive: true, force: true });
        const first = await timedBuild(out);
        ctx.report({
          name: 'warm build, recipe asked from kbuild',
          ours: first.total,
          goal: { value: 20_000, text: '≤ 20 s' },
          note: [...first.stages].map(([s, ms]) => `${s} ${(ms / 1000).toFixed(2)}`).join(', '),
        });
        const runs = [];
        for (let i = 0; i < ctx.runs; i++) runs.push(await timedBuild(out));
        ctx.report({
          name: 'warm build (median)',
          ours: median(runs.map((r) => r.total)),
          goal: { value: 20_000, text: '≤ 20 s' },
          note: `${ctx.runs} runs`,
        });
        for (const stage of runs[0]!.stages.keys()) {
          ctx.report({ name: `  stage ${stage}`, ours: median(runs.map((r) => r.stages.get(stage) ?? 0)) });
        }
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'meminfo cold',
    async run(ctx) {
      if (!existsSync(MEMINFO)) return ctx.skip(`${MEMINFO} is missing`);
      await ensureKernel(defaultRelease()); // make sure the packages are downloaded
      const blobs = join(cacheRoot(), 'blobs', 'sha256');
      if (!existsSync(blobs)) return ctx.skip(`no downloaded packages in ${blobs}`);
      const root = join(cacheRoot(), `bench-cold-${process.pid}`);
      const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));
      try {
        mkdirSync(join(root, 'blobs', 'sha256'), { recursive: true });
        for (const f of readdirSync(blobs)) linkSync(join(blobs, f), join(root, 'blobs', 'sha256', f));
        const r = await withCacheRoot(root, () => timedBuild(out));
        ctx.report({
          name: 'cold build (packages downloaded, nothing prepared)',
          ours: r.total,
          goal: { value: 120_000, text: '≤ 2 min' },
          note: 'one run',
        });
        for (const [stage, ms] of r.stages) ctx.report({ name: `  stage ${stage}`, ours: ms });
      } finally {
        rmSync(root, { recursive: true, force: true });
        rmSync(out, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'meminfo warm vs previous commit',
    async run(ctx) {
      if (!existsSync(MEMINFO)) return ctx.skip(`${MEMINFO} is missing`);
      await ensureKernel(defaultRelease());
      const base = builtCommit();
      if ('reason' in base) return ctx.skip(base.reason);
      const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));
      try {
        const ours = resolve(process.cwd(), 'bin', 'suture.js');
        timedCliBuild(ours, out); // kbuild's recipe remembered, page cache warm, for both
        timedCliBuild(base.cli, out);
        const oursMs: number[] = [];
        const baseMs: number[] = [];
        for (let i = 0; i < ctx.runs; i++) {
          oursMs.push(timedCliBuild(ours, out));
          baseMs.push(timedCliBuild(base.cli, out));
        }
        ctx.report({
          name: 'warm build through the CLI (median)',
          ours: median(oursMs),
          baseline: { name: `${base.ref} (${base.commit.slice(0, 10)})`, value: median(baseMs) },
          note: `${ctx.runs} interleaved runs each`,
        });
      } finally {
        base.dispose();
        rmSync(out, { recursive: true, force: true });
      }
    },
  },
  warm612,
];

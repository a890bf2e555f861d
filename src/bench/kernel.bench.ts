/*
 * kernel: fetching a target kernel cold and warm, and building a hand-written module.
 *
 * - fetch cold: `ensureKernel` into an empty SUTURE_CACHE (download, verify, extract, prepare the tree)
 *   against the bare way an operator would do the same in a shell: `apt-get download` the four
 *   packages, `dpkg-deb -x` them, untar the source, copy the config and Module.symvers, `make
 *   olddefconfig modules_prepare`. Costly (minutes, ~4 GB of temporary disk): SUTURE_BENCH_COLD_RUNS
 *   (default 1) sets the runs, 0 skips the row.
 * - fetch warm: `ensureKernel` on the real cache (what every command pays) against one cold fetch.
 * - build root: trixie's gcc-14 build root from nothing (`ensureBuildRoot` into an empty cache) against a
 *   plain `debootstrap --variant=minbase` of the same packages (SUTURE_BENCH_COLD_RUNS, 0 skips it).
 * - module build: `buildModule` of the blog's cmdline sample (kbuild + vermagic check) against the raw
 *   `make -C <tree> M=<dir> modules`, alternating, each on a fresh copy of the sources.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuildRoot, ROOT_MIRROR, rootPackages } from '../kernel/build-root.js';
import { withCacheRoot } from '../kernel/cache.js';
import { ensureKernel } from '../kernel/fetch.js';
import { resolveRelease } from '../kernel/releases.js';
import { defaultRelease } from '../kernel/target.js';
import { buildModule } from '../klp/kbuild.js';
import { writeSkeleton } from '../klp/skeleton.js';
import { type Benchmark, median, timeRuns } from './harness.js';

function sh(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  if (r.status !== 0)
    throw new Error(`baseline failed: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
}

/** The operator's way, in a shell, into `dir`. */
async function manualFetch(release: string, dir: string): Promise<void> {
  const { resolved: r } = await resolveRelease(release);
  const v = r.debianVersion;
  const pk = r.packages;
  sh(
    `apt-get download -qq ${pk.image}=${v} ${pk.headers}=${v} ${pk.dbg}=${v} ${pk.source}=${v}
     mkdir root && for d in *.deb; do dpkg-deb -x "$d" root; done
     mkdir src && tar -xJf root/usr/src/${pk.source}.tar.xz -C src --strip-components=1
     cp root/boot/config-${release} src/.config
     cp root/usr/src/linux-headers-${release}/Module.symvers src/
     make -s -C src -j2 KERNELRELEASE=${release} olddefconfig modules_prepare >/dev/null`,
    dir,
  );
}

export const benchmarks: Benchmark[] = [
  {
    name: 'fetch',
    async run(ctx) {
      const release = defaultRelease();
      const warmTarget = await ensureKernel(release);
      const warm = median(await timeRuns(Math.max(ctx.runs, 20), () => ensureKernel(release), 1));
      const coldRuns = Number(process.env.SUTURE_BENCH_COLD_RUNS ?? '1');
      if (!(coldRuns > 0)) {
        ctx.report({
          name: 'kernel fetch warm',
          ours: warm,
          note: 'cold runs skipped (SUTURE_BENCH_COLD_RUNS=0)',
        });
        return;
      }
      const ours: number[] = [];
      const base: number[] = [];
      for (let i = 0; i < coldRuns; i++) {
        const cache = mkdtempSync(join(tmpdir(), 'suture-bench-cache-'));
        try {
          ours.push(...(await withCacheRoot(cache, () => timeRuns(1, () => ensureKernel(release)))));
        } finally {
          rmSync(cache, { recursive: true, force: true });
        }
        const dir = mkdtempSync(join(tmpdir(), 'suture-bench-manual-'));
        try {
          base.push(...(await timeRuns(1, () => manualFetch(release, dir))));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      const cold = median(ours);
      ctx.report({
        name: 'kernel fetch cold',
        ours: cold,
        baseline: { name: 'apt-get download + dpkg-deb -x + untar + make (shell)', value: median(base) },
        note: `${coldRuns} run(s); ours also verifies SHA256s, extracts the dbg package and reads the build id`,
      });
      ctx.report({
        name: 'kernel fetch warm',
        ours: warm,
        baseline: { name: 'kernel fetch cold', value: cold },
        note: `median of ${Math.max(ctx.runs, 20)}; ${warmTarget.release}`,
      });
    },
  },
  {
    name: 'module-build',
    async run(ctx) {
      const k = await ensureKernel(defaultRelease());
      const work = mkdtempSync(join(tmpdir(), 'suture-bench-module-'));
      const src = join(work, 'src');
      writeSkeleton(src, { symbol: 'cmdline_proc_show', name: 'livepatch_sample' });
      let n = 0;
      const fresh = (): string => {
        const d = join(work, `b${n++}`);
        mkdirSync(d);
        for (const f of ['livepatch_sample.c', 'Kbuild', 'Makefile']) copyFileSync(join(src, f), join(d, f));
        return d;
      };
      try {
        const ours: number[] = [];
        const base: number[] = [];
        for (let i = 0; i < ctx.runs; i++) {
          const a = fresh();
          ours.push(...(await timeRuns(1, () => buildModule(a, k))));
          const b = fresh();
          base.push(
            ...(await timeRuns(1, () => sh(`make -s -C ${k.sourceTree} M=${b} modules >/dev/null`, b))),
          );
        }
        ctx.report({
          name: 'module build (cmdline sample)',
          ours: median(ours),
          baseline: { name: 'make -C tree M=dir modules', value: median(base) },
          note: `median of ${ctx.runs}, alternating`,
        });
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'build root',
    async run(ctx) {
      // trixie's gcc-14 root made from nothing (empty cache, no debootstrap package cache) against a
      // plain debootstrap of the same packages; network and dpkg dominate both
      const coldRuns = Number(process.env.SUTURE_BENCH_COLD_RUNS ?? '1');
      if (!(coldRuns > 0)) return ctx.skip('cold runs skipped (SUTURE_BENCH_COLD_RUNS=0)');
      const spec = { suite: 'trixie', packages: rootPackages(14), mirror: ROOT_MIRROR };
      const ours: number[] = [];
      const base: number[] = [];
      for (let i = 0; i < coldRuns; i++) {
        const cache = mkdtempSync(join(tmpdir(), 'suture-bench-root-'));
        try {
          ours.push(...(await withCacheRoot(cache, () => timeRuns(1, () => ensureBuildRoot(spec)))));
        } finally {
          rmSync(cache, { recursive: true, force: true });
        }
        const dir = mkdtempSync(join(tmpdir(), 'suture-bench-debootstrap-'));
        try {
          const include = `--include=${spec.packages.join(',')}`;
          base.push(
            ...(await timeRuns(1, () =>
              sh(
                `debootstrap --variant=minbase ${include} trixie ${dir}/root ${ROOT_MIRROR} >/dev/null`,
                dir,
              ),
            )),
          );
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      ctx.report({
        name: 'trixie build root, cold (gcc-14 + kbuild tools)',
        ours: median(ours),
        baseline: { name: 'debootstrap --variant=minbase of the same packages', value: median(base) },
        note: `${coldRuns} run(s); ours also probes the compiler inside and publishes atomically`,
      });
    },
  },
];

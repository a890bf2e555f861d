/*
 * `suture kernel list|fetch|info`: target kernels from Debian's packages (src/kernel/).
 *
 *   suture kernel list [--suite S] [--flavour F] [--refresh] [--json]
 *                                          every release (6.1, 6.12 of bookworm and trixie) with its suite,
 *                                          Debian version, compiler, and whether it is cached
 *   suture kernel fetch <release> [--json] download, verify, extract and prepare into the cache
 *   suture kernel info <release> [--json]  Debian version, build id, livepatch-relevant config, verdict
 *   suture kernel gc [--dry-run] [--min-age <minutes>]  remove cache entries no cached kernel uses
 *
 * Progress (download and extraction bars, step timings) goes to stderr, results to stdout.
 */
import { readFileSync } from 'node:fs';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { fail } from '../../diagnostic.js';
import type { CodegenFeature } from '../../kernel/codegen.js';
import { compilerFromConfig } from '../../kernel/compiler.js';
import { livepatchVerdict, parseKernelConfig } from '../../kernel/config.js';
import { cachedDetails, type EnsureOptions, ensureKernel, type ProgressEvent } from '../../kernel/fetch.js';
import { collectGarbage } from '../../kernel/gc.js';
import { FLAVOURS, isFlavour, isSuite, parseRelease, SUITES } from '../../kernel/release-name.js';
import { listReleases, type ReleaseListing } from '../../kernel/releases.js';
import type { KernelTarget } from '../../kernel/target.js';

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/** A progress display for ensureKernel on stderr: a bar per download/extraction when stderr is a TTY. */
export function fetchProgress(quiet = false): EnsureOptions['onProgress'] {
  const tty = process.stderr.isTTY === true;
  let bar: SingleBar | undefined;
  let barStep = '';
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  return (e: ProgressEvent) => {
    if (quiet) return;
    if (e.kind === 'bytes') {
      if (!tty) return;
      if (!bar || barStep !== e.step) {
        stopBar();
        barStep = e.step;
        bar = new SingleBar(
          {
            format: `  {bar} {percentage}% | {doneMiB} / {totalMiB} | ${e.step}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            barsize: 30,
          },
          Presets.shades_classic,
        );
        bar.start(e.total, e.done, { doneMiB: mib(e.done), totalMiB: mib(e.total) });
      }
      bar.update(e.done, { doneMiB: mib(e.done), totalMiB: mib(e.total) });
      return;
    }
    if (e.kind === 'output') return;
    stopBar();
    if (e.state === 'start') {
      if (!tty) process.stderr.write(`  … ${e.step}\n`);
      return;
    }
    if (e.state === 'cached') process.stderr.write(`  = ${e.step} (cached)\n`);
    else process.stderr.write(`  ✓ ${e.step} (${((e.ms ?? 0) / 1000).toFixed(1)} s)\n`);
  };
}

interface InfoJson {
  release: string;
  suite: string;
  debianVersion: string;
  buildId: string;
  /** CONFIG_CC_VERSION_TEXT, and where Suture runs that compiler (host or a build root) */
  compiler?: string;
  toolchain?: { kind: string; root?: string };
  codegen: CodegenFeature[];
  paths: Omit<KernelTarget, 'release' | 'debianVersion' | 'buildId'>;
  verdict: string;
  reasons: string[];
  options: { name: string; value: string; ok: boolean; role: string }[];
  packages?: { package: string; version: string; sha256: string; size: number }[];
  timings?: Record<string, number>;
}

export function kernelInfo(t: KernelTarget): InfoJson {
  const v = livepatchVerdict(parseKernelConfig(readFileSync(t.config, 'utf8')));
  const { release, debianVersion, buildId, ...paths } = t;
  const d = cachedDetails(release);
  const cfg = parseKernelConfig(readFileSync(t.config, 'utf8'));
  const compiler = d?.compiler ?? compilerFromConfig(cfg)?.text;
  return {
    release,
    suite: d?.suite ?? parseRelease(release).suite,
    debianVersion,
    buildId,
    ...(compiler ? { compiler } : {}),
    ...(d?.toolchain ? { toolchain: d.toolchain } : {}),
    paths,
    verdict: v.verdict,
    reasons: v.reasons,
    options: v.options,
    codegen: v.codegen,
    ...(d ? { packages: d.packages, timings: d.timings } : {}),
  };
}

/** Mark cached releases and take their compiler from the cached config (exact text). */
function markCached(list: ReleaseListing[]): void {
  for (const r of list) {
    const d = cachedDetails(r.release);
    r.cached = d !== undefined;
    if (!d) continue;
    const cc = d.compiler ?? compilerFromConfig(parseKernelConfig(readFileSync(d.config, 'utf8')))?.text;
    if (cc) Object.assign(r, { compiler: cc, compilerFrom: 'config' as const });
  }
}

export function register(program: Command): void {
  const kernel = program.command('kernel').description("target kernels from Debian's packages");

  kernel
    .command('list')
    .description('every targetable kernel release with suite, Debian version, compiler and cache state')
    .option('--suite <suite>', `only this suite (${SUITES.join(', ')})`)
    .option('--flavour <flavour>', `only this flavour (${FLAVOURS.join(', ')})`)
    .option('--refresh', "download Suture's own index of a suite the host lacks (trixie) again")
    .option('--json', 'machine-readable output')
    .action(async (o: { suite?: string; flavour?: string; refresh?: boolean; json?: boolean }) => {
      if (o.suite !== undefined && !isSuite(o.suite))
        fail('CLI-BAD-SUITE', `--suite ${o.suite} is not a suite Suture targets`, {
          hint: `one of ${SUITES.join(', ')}`,
        });
      if (o.flavour !== undefined && !isFlavour(o.flavour))
        fail('CLI-BAD-FLAVOUR', `--flavour ${o.flavour} is not a flavour Suture targets`, {
          hint: `one of ${FLAVOURS.join(', ')}`,
        });
      const list = await listReleases({
        ...(o.suite && isSuite(o.suite) ? { suites: [o.suite] } : {}),
        ...(o.flavour && isFlavour(o.flavour) ? { flavours: [o.flavour] } : {}),
        refresh: o.refresh === true,
      });
      markCached(list);
      if (o.json) {
        console.log(JSON.stringify(list, null, 2));
        return;
      }
      console.log(`  ${'release'.padEnd(30)} ${'suite'.padEnd(9)} ${'debian version'.padEnd(20)} compiler`);
      for (const r of list)
        console.log(
          `${r.cached ? '*' : ' '} ${r.release.padEnd(30)} ${r.suite.padEnd(9)} ${r.debianVersion.padEnd(20)} ${r.compiler ?? '?'}`,
        );
      console.log('\n* = in the cache (compiler from its config; others from the headers package)');
    });

  kernel
    .command('fetch <release>')
    .description('download, verify, extract and prepare a kernel into the cache (idempotent)')
    .option('--json', 'print the cached target as JSON')
    .action(async (release: string, o: { json?: boolean }) => {
      const t0 = performance.now();
      const t = await ensureKernel(release, { onProgress: fetchProgress() });
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      if (o.json) {
        console.log(JSON.stringify(t, null, 2));
        return;
      }
      const d = cachedDetails(t.release);
      const where = d?.toolchain?.root ? `build root ${d.toolchain.root}` : 'host';
      console.log(
        [
          `${t.release} (${t.debianVersion}) ready in ${s} s — build id ${t.buildId}`,
          `  ${t.dir}`,
          ...(d?.compiler ? [`  compiler: ${d.compiler} (${where})`] : []),
        ].join('\n'),
      );
    });

  kernel
    .command('info <release>')
    .description('Debian version, build id and livepatch support of a kernel (fetches it if needed)')
    .option('--json', 'machine-readable output')
    .action(async (release: string, o: { json?: boolean }) => {
      const t = await ensureKernel(release, { onProgress: fetchProgress() });
      const info = kernelInfo(t);
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      const lines = [
        `release         ${info.release}`,
        `suite           ${info.suite}`,
        `debian version  ${info.debianVersion}`,
        `build id        ${info.buildId}`,
        `compiler        ${info.compiler ?? 'unknown'}${info.toolchain ? ` (${info.toolchain.kind === 'host' ? 'on the host' : `in the build root ${info.toolchain.root}`})` : ''}`,
        `vmlinuz         ${info.paths.vmlinuz}`,
        `vmlinux (debug) ${info.paths.vmlinux}`,
        `source tree     ${info.paths.sourceTree}`,
        '',
        'livepatch configuration:',
        ...info.options.map(
          (op) => `  ${op.ok ? '✓' : '✗'} CONFIG_${op.name.padEnd(26)} ${op.value.padEnd(3)} ${op.role}`,
        ),
        '',
        `verdict: ${info.verdict}`,
        ...info.reasons.map((r) => `  ${r}`),
        '',
        'code generation (what each option asks of a livepatch):',
        ...info.codegen.flatMap((c) => [
          `  ${c.on ? '●' : '○'} CONFIG_${c.name.padEnd(31)} ${c.value}${c.alias ? `   (also named ${c.alias})` : ''}`,
          ...(c.on ? [`      ${c.what}`, `      → ${c.livepatch}`] : []),
        ]),
        ...(info.timings && Object.keys(info.timings).length
          ? [
              '',
              'fetch timings (last fill of the cache):',
              ...Object.entries(info.timings).map(([k, v]) => `  ${k.padEnd(44)} ${(v / 1000).toFixed(1)} s`),
            ]
          : []),
      ];
      console.log(lines.join('\n'));
    });

  kernel
    .command('gc')
    .description('remove cache entries, partial downloads and packages no cached kernel uses')
    .option('--dry-run', 'only list what would be removed')
    .option('--min-age <minutes>', 'keep anything modified more recently (default 60)', '60')
    .option('--json', 'machine-readable output')
    .action(async (o: { dryRun?: boolean; minAge: string; json?: boolean }) => {
      const minutes = Number(o.minAge);
      if (!Number.isFinite(minutes) || minutes < 0)
        fail('CLI-BAD-NUMBER', `--min-age ${o.minAge} is not a number of minutes`);
      const r = await collectGarbage({ minAgeMs: minutes * 60_000, dryRun: o.dryRun === true });
      if (o.json) {
        console.log(JSON.stringify({ dryRun: o.dryRun === true, ...r }, null, 2));
        return;
      }
      for (const p of r.removed) console.log(`${o.dryRun ? 'would remove' : 'removed'} ${p}`);
      console.log(
        `${r.removed.length} item(s) ${o.dryRun ? 'to remove' : 'removed'}; ${r.kept.length} live entries kept`,
      );
    });
}

/*
 * elf: the ELF engine against binutils on the target kernel's files.
 *  - index-vmlinux: our symbol index of the debug vmlinux (symtab + strtab read by offset, FILE groups,
 *    kallsyms sympos) vs `readelf -sW vmlinux > /dev/null`. Goal: faster than readelf.
 *  - parse-200-objects: readElf (whole model: sections, symbols, relocations, groups, notes) over 200
 *    kernel objects (the compiled test objects, topped up with shipped modules) vs one `readelf -aW`
 *    process over the same files, output to /dev/null.
 *  - index-peak-memory: peak resident memory (VmHWM) of a fresh Node process that indexes the vmlinux,
 *    next to the VmHWM of a bare Node process. Goal: under 300 MB.
 */
import { spawnSync } from 'node:child_process';
import { openSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readElfFile } from '../elf/reader.js';
import { indexSymbols } from '../elf/symbol-index.js';
import { kernelTestObjects } from '../elf/testing/test-objects.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { type Benchmark, median, timeRuns } from './harness.js';

function devNull(): number {
  return openSync('/dev/null', 'w');
}

function readelfMs(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync('readelf', args, { stdio: ['ignore', devNull(), 'ignore'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`readelf ${args.slice(0, 2).join(' ')} failed`);
  return ms;
}

/** CPU time (user + system, ms) of a command, from bash's `times` for its children: steadier than wall time on a busy machine. */
function childCpuMs(argv: string[]): number {
  const quoted = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} >/dev/null; times`], { encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s/.exec(lines[lines.length - 1] ?? '');
  if (r.status !== 0 || !m) throw new Error(`could not time ${argv[0]}`);
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

async function ownCpuMs(fn: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

function findKo(dir: string, out: string[], limit: number): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (out.length >= limit) return;
    const p = join(dir, e.name);
    if (e.isDirectory()) findKo(p, out, limit);
    else if (e.name.endsWith('.ko')) out.push(p);
  }
}

const INDEX_SCRIPT = (vmlinux: string) => `
  const { indexSymbols } = await import(${JSON.stringify(new URL('../elf/symbol-index.js', import.meta.url).href)});
  const t0 = performance.now();
  const ix = await indexSymbols(${JSON.stringify(vmlinux)});
  console.log(JSON.stringify({ inside: performance.now() - t0, symbols: ix.count }));
`;

/** A fresh Node process that indexes the vmlinux: its wall time (spawn to exit) and the index time inside it. */
function childIndex(vmlinux: string): { wall: number; inside: number; symbols: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', INDEX_SCRIPT(vmlinux)], {
    encoding: 'utf8',
  });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`index child failed: ${r.stderr}`);
  const { inside, symbols } = JSON.parse(r.stdout) as { inside: number; symbols: number };
  return { wall, inside, symbols };
}

function bareNodeMs(): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  return performance.now() - t0;
}

const PEAK_SCRIPT = (vmlinux: string, index: boolean) => `
  const { readFileSync } = await import('node:fs');
  ${
    index
      ? `const { indexSymbols } = await import(${JSON.stringify(new URL('../elf/symbol-index.js', import.meta.url).href)});
  const ix = await indexSymbols(${JSON.stringify(vmlinux)});
  if (ix.symbols.length === 0) throw new Error('empty');`
      : ''
  }
  const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  console.log(hwm ? hwm[1] : 'NaN');
`;

function peakKb(vmlinux: string, index: boolean): number {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PEAK_SCRIPT(vmlinux, index)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`peak-memory child failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export const benchmarks: Benchmark[] = [
  {
    name: 'index-vmlinux',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const runs = Math.max(5, ctx.runs);
      const size = `${(statSync(kernel.vmlinux).size / 2 ** 20).toFixed(0)} MiB file`;
      // like with like: a fresh process each time, ours and readelf interleaved so both see the same load
      childIndex(kernel.vmlinux);
      readelfMs(['-sW', kernel.vmlinux]);
      const freshOurs: number[] = [];
      const freshInside: number[] = [];
      const freshBase: number[] = [];
      const bareNode: number[] = [];
      let symbols = 0;
      for (let i = 0; i < runs; i++) {
        const r = childIndex(kernel.vmlinux);
        freshOurs.push(r.wall);
        freshInside.push(r.inside);
        symbols = r.symbols;
        freshBase.push(readelfMs(['-sW', kernel.vmlinux]));
        bareNode.push(bareNodeMs());
      }
      const readelfWall = median(freshBase);
      ctx.report({
        name: `index ${symbols} vmlinux symbols (FILE groups + sympos), fresh process`,
        ours: median(freshOurs),
        baseline: { name: 'fresh readelf -sW vmlinux > /dev/null', value: readelfWall },
        goal: { value: readelfWall, text: 'faster than readelf' },
        note: `${size}; wall time incl. process start, median of ${runs}; a bare \`node -e 0\` takes ${median(bareNode).toFixed(0)} ms`,
      });
      ctx.report({
        name: 'same, index time inside that fresh process (cold JIT, from indexSymbols() call to return)',
        ours: median(freshInside),
        baseline: { name: 'fresh readelf -sW vmlinux > /dev/null (whole process)', value: readelfWall },
        goal: { value: readelfWall, text: 'faster than readelf' },
        note: `median of ${runs}`,
      });
      const warm = await timeRuns(
        runs,
        async () => {
          await indexSymbols(kernel.vmlinux);
        },
        1,
      );
      ctx.report({
        name: 'same, in a long-lived process (warm JIT)',
        ours: median(warm),
        baseline: { name: 'fresh readelf -sW vmlinux > /dev/null (whole process)', value: readelfWall },
        goal: { value: readelfWall, text: 'faster than readelf' },
        note: `median of ${runs}`,
      });
      const cpuOurs: number[] = [];
      const cpuBase: number[] = [];
      for (let i = 0; i < runs; i++) {
        cpuOurs.push(await ownCpuMs(() => indexSymbols(kernel.vmlinux)));
        cpuBase.push(childCpuMs(['readelf', '-sW', kernel.vmlinux]));
      }
      ctx.report({
        name: 'same, CPU time (user + system), warm',
        ours: median(cpuOurs),
        baseline: { name: 'readelf -sW vmlinux > /dev/null', value: median(cpuBase) },
        goal: { value: median(cpuBase), text: 'faster than readelf' },
        note: 'CPU time is less disturbed than wall time when the machine is shared',
      });
    },
  },
  {
    name: 'parse-200-objects',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const files = (await kernelTestObjects(kernel.sourceTree)).map((o) => o.path);
      if (files.length < 200) findKo(join(kernel.modulesDir, 'kernel'), files, 200);
      const set = files.slice(0, 200);
      if (set.length < 200) return ctx.skip(`only ${set.length} objects available`);
      const bytes = set.reduce((n, f) => n + statSync(f).size, 0);
      const ours = await timeRuns(
        ctx.runs,
        async () => {
          for (const f of set) await readElfFile(f);
        },
        1,
      );
      readelfMs(['-aW', ...set]);
      const base: number[] = [];
      for (let i = 0; i < ctx.runs; i++) base.push(readelfMs(['-aW', ...set]));
      ctx.report({
        name: 'parse 200 kernel objects (sections, symbols, relocations, groups, notes)',
        ours: median(ours),
        baseline: { name: 'readelf -aW (one process, all files) > /dev/null', value: median(base) },
        note: `${(bytes / 2 ** 20).toFixed(1)} MiB in total, median of ${ctx.runs}`,
      });
    },
  },
  {
    name: 'index-peak-memory',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const idx: number[] = [];
      const bare: number[] = [];
      for (let i = 0; i < Math.min(3, ctx.runs); i++) {
        idx.push(peakKb(kernel.vmlinux, true) / 1024);
        bare.push(peakKb(kernel.vmlinux, false) / 1024);
      }
      ctx.report({
        name: 'peak resident memory while indexing vmlinux (VmHWM)',
        ours: median(idx),
        unit: 'MB',
        baseline: { name: 'bare node process', value: median(bare) },
        goal: { value: 300, text: 'under 300 MB' },
        note: `file ${(statSync(kernel.vmlinux).size / 2 ** 20).toFixed(0)} MiB; ${fileURLToPath(
          import.meta.url,
        )
          .split('/')
          .pop()}`,
      });
    },
  },
];

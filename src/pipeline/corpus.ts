/*
 * The corpus run (`npm run corpus`): every real stable fix in ../shared/corpus/stable-6.1.187-to-192/
 * against 6.1.0-53-cloud-amd64, built, then loaded in the exact kernel under QEMU.
 *
 * Each patch ends in exactly one of three verdicts:
 *   - loaded:  the module built, loaded, its transition completed, and the VM still ran a smoke script
 *              (and disabling the patch completed too);
 *   - refused: a safety rule said no — shown with its rule id(s) — or the fix needs definitions the
 *              old tree does not have (BUILD-MISSING-DEFINITIONS, naming them);
 *   - failed:  anything else, with the stage and the message. The goal is that nothing lands here.
 *
 * Module targets are loaded (modprobe, with their dependencies) before the livepatch: a livepatch
 * referencing symbols exported by the target's dependencies needs them present (the before/after
 * order itself is covered by build.vm.test.ts).
 *
 * To keep the VM time reasonable, every built module is tried in one VM, one after the other (load,
 * wait for the transition, smoke, disable, unload). If that VM dies or hangs, the patch it was working
 * on is marked failed with the VM's verdict and the rest are tried again in a fresh VM.
 *
 * Usage: node dist/pipeline/corpus.js [--no-vm] [--corpus NAME|DIR] [--kernel RELEASE] [FILTER...]
 *   FILTER: substrings of patch file names; NAME: a folder of ../shared/corpus/ (default
 *   stable-6.1.187-to-192); the kernel defaults to the one the corpus fits (CORPUS_KERNELS, as
 *   ../shared/corpus/README.md says), else $SUTURE_KERNEL. The table goes to artifacts/corpus.txt
 *   (artifacts/corpus-<NAME>.txt for another corpus).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fail, toDiagnostic } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import { BuildRefused, buildLivepatch, type Stage } from './pipeline.js';

export const CORPUS_ROOT = resolve(process.cwd(), '..', 'shared', 'corpus');
export const CORPUS_DIR = join(CORPUS_ROOT, 'stable-6.1.187-to-192');
export const CORPUS_RELEASE = '6.1.0-53-cloud-amd64';
/** The kernel each corpus of ../shared/corpus/ is run against by default (its README's table). */
export const CORPUS_KERNELS: Record<string, string> = {
  'stable-6.1.187-to-192': CORPUS_RELEASE,
  'stable-6.12.117-to-118': '6.12.117+deb12-cloud-amd64',
};

export interface CorpusArgs {
  dir: string;
  release: string;
  noVm: boolean;
  filters: string[];
  /** where the table is kept, relative to artifacts/ */
  table: string;
}

/** `npm run corpus -- [--no-vm] [--corpus NAME|DIR] [--kernel R] [FILTER...]` into values. */
export function corpusArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CorpusArgs {
  let corpus: string | undefined;
  let kernel: string | undefined;
  let noVm = false;
  const filters: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--'))
        fail('CORPUS-BAD-ARGS', `${a} needs a value`, { hint: 'e.g. --corpus stable-6.12.117-to-118' });
      return v;
    };
    if (a === '--no-vm') noVm = true;
    else if (a === '--corpus') corpus = value();
    else if (a === '--kernel') kernel = value();
    else if (a.startsWith('--'))
      fail('CORPUS-BAD-ARGS', `unknown option ${a}`, { hint: 'options: --no-vm, --corpus, --kernel' });
    else filters.push(a);
  }
  const dir = corpus ? (corpus.includes('/') ? resolve(corpus) : join(CORPUS_ROOT, corpus)) : CORPUS_DIR;
  if (!existsSync(dir))
    fail('CORPUS-MISSING', `no corpus at ${dir}`, { hint: `corpora live in ${CORPUS_ROOT}` });
  const name = basename(dir);
  const release = kernel ?? CORPUS_KERNELS[name] ?? env.SUTURE_KERNEL ?? CORPUS_RELEASE;
  const table = dir === CORPUS_DIR ? 'corpus.txt' : `corpus-${name}.txt`;
  return { dir, release, noVm, filters, table };
}

export type Verdict =
  | { kind: 'loaded'; detail: string }
  | { kind: 'refused'; rules: string[]; detail: string }
  | { kind: 'failed'; stage: Stage | 'vm'; detail: string };

export interface CorpusEntry {
  patch: string;
  name: string;
  verdict: Verdict;
  buildMs: number;
  vmMs?: number;
  ko?: string;
  /** module targets to load in the VM after the livepatch */
  modules: string[];
  functions: string[];
}

/** `net_ipv4_tcp.patch` → `c_net_ipv4_tcp` (module names must be short and unique). */
function patchName(file: string): string {
  return `c_${file
    .replace(/\.(patch|diff)$/, '')
    .replace(/[^a-z0-9_]/gi, '_')
    .toLowerCase()}`.slice(0, 40);
}

export async function buildOne(
  target: KernelTarget,
  dir: string,
  file: string,
  outDir: string,
): Promise<CorpusEntry> {
  const name = patchName(file);
  let stage: Stage = 'kernel';
  const t0 = performance.now();
  const entry: CorpusEntry = {
    patch: file,
    name,
    verdict: { kind: 'loaded', detail: '' },
    buildMs: 0,
    modules: [],
    functions: [],
  };
  try {
    const r = await buildLivepatch({
      diffPath: join(dir, file),
      release: target.release,
      target,
      name,
      outDir,
      onProgress: (e) => {
        if (e.kind === 'stage-start') stage = e.stage;
      },
    });
    entry.ko = r.ko;
    entry.functions = r.summary;
    entry.modules = [...new Set(r.units.map((u) => u.unit.target).filter((t) => t !== 'vmlinux'))];
    entry.verdict = { kind: 'loaded', detail: 'built, not yet loaded' };
  } catch (e) {
    if (e instanceof BuildRefused) {
      const rules = [...new Set(e.refusals.map((d) => d.code))];
      const first = e.refusals[0]!;
      entry.verdict = {
        kind: 'refused',
        rules,
        detail: `${first.location?.symbol ? `${first.location.symbol}: ` : ''}${first.message}`,
      };
    } else {
      const d = toDiagnostic(e);
      entry.verdict = { kind: 'failed', stage, detail: `${d.code}: ${d.message}` };
    }
  }
  entry.buildMs = performance.now() - t0;
  return entry;
}

const SMOKE = [
  'cat /proc/meminfo /proc/cmdline /proc/self/status > /dev/null',
  'ls -R /proc/sys/kernel > /dev/null 2>&1 || true',
  'echo smoke > /tmp/smoke && cat /tmp/smoke > /dev/null',
  'ps > /dev/null 2>&1 || true',
];

/** One VM trying every entry in turn; returns the entries it reported on. */
async function loadBatch(
  target: KernelTarget,
  batch: CorpusEntry[],
): Promise<{ reported: Set<string>; vm: string }> {
  const lines = [
    '#!/bin/sh',
    'wait_transition() {',
    '  i=0',
    '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 40 ]; do sleep 1; i=$((i+1)); done',
    '}',
    // the tasks a stalled transition waits for, with the top of their stacks
    'stuck_tasks() {',
    '  for t in /proc/[0-9]*/task/[0-9]*; do',
    '    if [ "$(cat $t/patch_state 2>/dev/null)" = 0 ]; then',
    '      printf "%s(%s) " "$(cat $t/comm)" "$(head -3 $t/stack 2>/dev/null | sed "s/^\\[<0>\\] //" | tr "\\n" " ")"',
    '    fi',
    '  done',
    '}',
  ];
  for (const e of batch) {
    // the loaded module (and its sysfs directory) is livepatch_NAME
    const mod = `livepatch_${e.name.replace(/-/g, '_')}`;
    const p = `/sys/kernel/livepatch/${mod}`;
    lines.push(
      `echo "BEGIN ${e.name}"`,
      `t0=$(cut -d' ' -f1 /proc/uptime)`,
      // the target module (with its dependencies, which the livepatch may reference) is loaded first
      ...e.modules.map((m) => `modprobe ${m} || echo "note: modprobe ${m} failed"`),
      `if ! out=$(insmod /lp/${e.name}.ko 2>&1); then echo "RESULT ${e.name} fail insmod: $out | $(dmesg | tail -3 | tr '\\n' ' ')"; else`,
      `  wait_transition ${p}`,
      `  if [ ! -d ${p} ]; then echo "RESULT ${e.name} fail ${p} missing after insmod"; elif [ "$(cat ${p}/transition)" != 0 ]; then`,
      `    echo "RESULT ${e.name} fail transition did not complete in 40 s: $(stuck_tasks)"`,
      `    echo 0 > ${p}/enabled; wait_transition ${p}; rmmod ${mod} 2>/dev/null`,
      '  else',
      ...SMOKE.map((s) => `    ${s}`),
      `    echo 0 > ${p}/enabled; wait_transition ${p}`,
      `    if [ -d ${p} ] && [ "$(cat ${p}/transition 2>/dev/null)" = 1 ]; then echo "RESULT ${e.name} fail disabling did not complete"; else`,
      `      rmmod ${mod} 2>/dev/null || true`,
      `      echo "RESULT ${e.name} ok $(cut -d' ' -f1 /proc/uptime) $t0"`,
      '    fi',
      '  fi',
      'fi',
    );
  }
  lines.push('');
  const r = await runInVm({
    kernel: target,
    placeModules: [...new Set(batch.flatMap((e) => e.modules))],
    files: batch.map((e) => ({ from: e.ko!, to: `/lp/${e.name}.ko` })),
    timeoutMs: 120_000 + 60_000 * batch.length,
    script: lines.join('\n'),
  });
  const reported = new Set<string>();
  for (const m of r.output.matchAll(/^RESULT (\S+) (ok|fail) ?(.*)$/gm)) {
    const e = batch.find((x) => x.name === m[1]);
    if (!e) continue;
    reported.add(e.name);
    if (m[2] === 'ok') {
      const [end, start] = (m[3] ?? '').split(' ').map(Number);
      e.vmMs = end !== undefined && start !== undefined ? (end - start) * 1000 : undefined;
      e.verdict = { kind: 'loaded', detail: 'transition complete, smoke ok, disabled' };
    } else {
      e.verdict = { kind: 'failed', stage: 'vm', detail: m[3] ?? 'failed in the VM' };
    }
  }
  // a kernel complaint during an entry is a failure of that entry even if the script carried on
  if (r.outcome !== 'ok') {
    const begun = [...r.output.matchAll(/^BEGIN (\S+)$/gm)].map((m) => m[1]!);
    const culprit = batch.find((e) => e.name === begun.at(-1));
    if (culprit && (reported.has(culprit.name) ? r.outcome !== 'script-failed' : true)) {
      culprit.verdict = { kind: 'failed', stage: 'vm', detail: r.message };
      reported.add(culprit.name);
    }
  }
  return { reported, vm: r.message };
}

export function formatTable(entries: CorpusEntry[]): string {
  const rows = entries.map((e) => {
    const v = e.verdict;
    const what =
      v.kind === 'loaded'
        ? 'built and loaded'
        : v.kind === 'refused'
          ? `refused (${v.rules.join(', ')})`
          : `failed (${v.stage})`;
    const detail =
      v.kind === 'loaded' ? e.functions.map((f) => f.replace(/ \(.*$/, '')).join('; ') : v.detail;
    return [
      e.patch,
      what,
      (e.buildMs / 1000).toFixed(1),
      e.vmMs === undefined ? '-' : (e.vmMs / 1000).toFixed(1),
      detail.replace(/\s+/g, ' ').slice(0, 160),
    ];
  });
  const head = ['patch', 'result', 'build s', 'vm s', 'detail'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  widths[4] = Math.min(widths[4]!, 160);
  const fmt = (r: string[]) => r.map((c, i) => (i === 4 ? c : c.padEnd(widths[i]!))).join('  ');
  const count = (k: Verdict['kind']) => entries.filter((e) => e.verdict.kind === k).length;
  return [
    fmt(head),
    fmt(widths.map((w) => '-'.repeat(w))),
    ...rows.map(fmt),
    '',
    `corpus: ${entries.length} patches: ${count('loaded')} built and loaded, ${count('refused')} refused, ${count('failed')} failed`,
  ].join('\n');
}

/**
 * Build every patch of `files` (names in `dir`), then load the built ones in VMs running `target`.
 * Progress goes to `log`; the entries come back in the order of `files`.
 */
export async function runCorpus(
  target: KernelTarget,
  dir: string,
  files: string[],
  opts: { noVm?: boolean; log?: (line: string) => void } = {},
): Promise<CorpusEntry[]> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const out = mkdtempSync(join(tmpdir(), 'suture-corpus-'));
  const entries: CorpusEntry[] = [];
  try {
    for (const f of files) {
      const e = await buildOne(target, dir, f, out);
      entries.push(e);
      const v = e.verdict;
      log(
        `build ${f}: ${v.kind === 'loaded' ? 'built' : v.kind === 'refused' ? `refused (${v.rules.join(', ')})` : `failed (${v.stage}): ${v.detail}`} in ${(e.buildMs / 1000).toFixed(1)} s`,
      );
    }
    let pending = entries.filter((e) => e.ko);
    if (opts.noVm) {
      for (const e of pending) e.verdict = { kind: 'loaded', detail: 'built (VM skipped: --no-vm)' };
      pending = [];
    }
    while (pending.length) {
      log(`vm: loading ${pending.length} livepatches one after the other`);
      const { reported, vm } = await loadBatch(target, pending);
      const rest = pending.filter((e) => !reported.has(e.name));
      if (rest.length === pending.length) {
        // the VM reported on nothing: blame the first and go on without it
        rest[0]!.verdict = { kind: 'failed', stage: 'vm', detail: vm };
        rest.shift();
      }
      pending = rest;
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return entries;
}

/** The corpus's patch files, optionally only those whose names contain one of `filters`. */
export function corpusFiles(dir: string, filters: string[] = []): string[] {
  return readdirSync(dir)
    .filter((f) => /\.(patch|diff)$/.test(f))
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const args = corpusArgs(argv);
  const target = await ensureKernel(args.release);
  const entries = await runCorpus(target, args.dir, corpusFiles(args.dir, args.filters), {
    noVm: args.noVm,
  });
  const table = formatTable(entries);
  process.stdout.write(`${table}\n`);
  try {
    mkdirSync('artifacts', { recursive: true });
    writeFileSync(resolve('artifacts', args.table), `${table}\n`);
  } catch {
    // artifacts/ is optional
  }
  return entries.some((e) => e.verdict.kind === 'failed') ? 1 : 0;
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

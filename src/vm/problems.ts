/*
 * Kernel problems seen on the console: oops, panic, BUG and WARNING reports, each with its trace.
 *
 * The kernel reports trouble with a recognisable first line (`Oops: 0002 [#1] ...`, `BUG: kernel NULL
 * pointer dereference`, `kernel BUG at mm/slub.c:123!`, `WARNING: CPU: 0 PID: 1 at ...`, `Kernel panic -
 * not syncing: ...`, `general protection fault`) followed by registers and a call trace, and closes
 * most reports with a `---[ end trace ... ]---` or `---[ end Kernel panic ... ]---` line. A problem's
 * trace runs from its first line to that end line (or at most MAX_TRACE lines). One event often prints
 * several first lines (a BUG: line, then Oops:, then the panic); each is a problem, in console order, and
 * the overall verdict is the worst of them.
 */

export type ProblemKind = 'panic' | 'oops' | 'bug' | 'warning';

export interface KernelProblem {
  kind: ProblemKind;
  /** the first line, without its timestamp */
  title: string;
  /** the report from its first line to its end marker, timestamps kept */
  trace: string;
  /** character offset in the console text where it starts */
  offset: number;
}

const MAX_TRACE = 120;

const STARTS: [ProblemKind, RegExp][] = [
  ['panic', /Kernel panic - not syncing/],
  ['oops', /\bOops: /],
  ['oops', /general protection fault/],
  // the header every x86 die() prints: `invalid opcode: 0000 [#1] PREEMPT SMP NOPTI`, `stack segment: ...`
  ['oops', /^[a-z][a-z -]*: [0-9a-f]{4} \[#\d+\]/],
  ['bug', /kernel BUG at /],
  ['bug', /\bBUG: /],
  ['warning', /\bWARNING: /],
];

const END = /---\[ end (trace|Kernel panic)/;
const TIMESTAMP = /^\[\s*\d+\.\d+\]\s?/;

/** Severity order: the worst kind decides a run's outcome. */
export const SEVERITY: Record<ProblemKind, number> = { panic: 4, oops: 3, bug: 3, warning: 2 };

export function findProblems(console: string): KernelProblem[] {
  const problems: KernelProblem[] = [];
  const lines = console.split('\n');
  let offset = 0;
  const offsets = lines.map((l) => {
    const o = offset;
    offset += l.length + 1;
    return o;
  });
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    const body = line.replace(TIMESTAMP, '');
    const hit = STARTS.find(([, re]) => re.test(body));
    if (!hit) continue;
    let j = i;
    while (j < lines.length - 1 && j - i < MAX_TRACE && !END.test(lines[j] ?? '')) j++;
    problems.push({
      kind: hit[0],
      title: body.trim(),
      trace: lines
        .slice(i, j + 1)
        .map((l) => l.replace(/\r$/, ''))
        .join('\n'),
      offset: offsets[i] ?? 0,
    });
  }
  return problems;
}

export function worstProblem(problems: readonly KernelProblem[]): KernelProblem | undefined {
  let worst: KernelProblem | undefined;
  for (const p of problems) if (!worst || SEVERITY[p.kind] > SEVERITY[worst.kind]) worst = p;
  return worst;
}

export interface ModuleRefusal {
  module: string;
  reason: string;
}

/**
 * Why the kernel refused to load a module, from its log: wrong vermagic, symbol CRCs that disagree,
 * unknown symbols, a livepatch that could not be applied, a missing or bad signature under enforcement.
 */
const REFUSALS = [
  /^(\S+): (version magic '.*' should be '.*')$/,
  /^(\S+): (disagrees about version of symbol \S+)$/,
  /^(\S+): (Unknown symbol \S+.*)$/,
  /^(\S+): (no symbol version for \S+)$/,
  /^(Loading of (?:unsigned )?module(?: with unavailable key)?) (is rejected)$/,
  /^livepatch: (\S+?):? ?(.*(?:failed|not found|unable|can't|invalid|error).*)$/i,
];

export function findModuleRefusals(kernelLog: string): ModuleRefusal[] {
  const out: ModuleRefusal[] = [];
  for (const raw of kernelLog.split('\n')) {
    const line = raw.replace(/\r$/, '').replace(TIMESTAMP, '').trim();
    for (const re of REFUSALS) {
      const m = re.exec(line);
      if (m?.[1] && m[2]) {
        // insmod retries with the other syscall, so the kernel often says it twice
        if (!out.some((r) => r.module === m[1] && r.reason === m[2]))
          out.push({ module: m[1], reason: m[2] });
        break;
      }
    }
  }
  return out;
}

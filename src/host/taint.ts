/*
 * Kernel taint: the bit mask in /proc/sys/kernel/tainted, decoded into the letters the kernel prints
 * in oopses ("Tainted: G  OE K") and into words an operator can read.
 *
 * Loading a livepatch sets K (TAINT_LIVEPATCH) for good; an out-of-tree livepatch also sets O, and an
 * unsigned one E. The table follows kernel/panic.c's taint_flags[] of 6.1 (bit order matters).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostRoots } from './roots.js';

export interface TaintFlag {
  bit: number;
  letter: string;
  meaning: string;
}

const TABLE: Array<[string, string]> = [
  ['P', 'proprietary module loaded'],
  ['F', 'module force-loaded'],
  ['S', 'CPU out of specification'],
  ['R', 'module force-unloaded'],
  ['M', 'machine check exception'],
  ['B', 'bad page referenced'],
  ['U', 'taint requested by user space'],
  ['D', 'kernel died recently (oops or BUG)'],
  ['A', 'ACPI table overridden'],
  ['W', 'kernel warning issued'],
  ['C', 'staging driver loaded'],
  ['I', 'firmware bug workaround applied'],
  ['O', 'out-of-tree module loaded'],
  ['E', 'unsigned module loaded'],
  ['L', 'soft lockup occurred'],
  ['K', 'kernel has been live patched'],
  ['X', 'auxiliary (distribution-defined) taint'],
  ['T', 'built with struct randomization plugin'],
  ['N', 'in-kernel test run'],
];

export interface Taint {
  value: number;
  flags: TaintFlag[];
  /** letters in bit order, e.g. `OEK`; empty when untainted */
  letters: string;
}

export function decodeTaint(value: number): Taint {
  const flags: TaintFlag[] = [];
  for (let bit = 0; bit < 32; bit++) {
    if (!((value >>> bit) & 1)) continue;
    const row = TABLE[bit];
    flags.push(
      row
        ? { bit, letter: row[0], meaning: row[1] }
        : { bit, letter: '?', meaning: `unknown taint bit ${bit}` },
    );
  }
  return { value, flags, letters: flags.map((f) => f.letter).join('') };
}

export function readTaint(roots: HostRoots): Taint | undefined {
  try {
    const raw = readFileSync(join(roots.proc, 'sys/kernel/tainted'), 'utf8').trim();
    const value = Number.parseInt(raw, 10);
    return Number.isFinite(value) ? decodeTaint(value) : undefined;
  } catch {
    return undefined;
  }
}

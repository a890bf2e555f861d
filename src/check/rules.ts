/*
 * The rule book: every livepatch-safety rule, run together over one object comparison.
 *
 * Errors are refusals (the build stops, the CLI exits non-zero); warnings are shown and the build goes on.
 */
import type { Diagnostic } from '../diagnostic.js';
import { dataChanged } from './data-changed.js';
import { dataNewGlobal } from './data-new-global.js';
import type { ObjectFacts, Rule } from './facts.js';
import { initChanged } from './init-changed.js';
import { inlineSpread } from './inline-spread.js';
import { notrace } from './notrace.js';
import { renamedSymbol } from './renamed-symbol.js';
import { signatureChanged } from './signature-changed.js';
import { specialEntry } from './special-entry.js';

export const RULES: readonly Rule[] = [
  dataChanged,
  dataNewGlobal,
  initChanged,
  notrace,
  renamedSymbol,
  specialEntry,
  signatureChanged,
  inlineSpread,
];

export function runRules(facts: ObjectFacts): { refusals: Diagnostic[]; warnings: Diagnostic[] } {
  const all = RULES.flatMap((r) => r.check(facts));
  return {
    refusals: all.filter((d) => d.severity === 'error'),
    warnings: all.filter((d) => d.severity !== 'error'),
  };
}

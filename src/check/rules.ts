/*
 * The rule book: every reason Suture refuses a patch, in three groups.
 *
 *   source rules (source/) — the diff and the units it touches, decided before or while compiling;
 *   object rules (object/) — one original/patched object pair, run together over its comparison;
 *   module rules (module/) — the livepatch module being put together from the diff objects.
 *
 * Object rules all run, so the user sees every problem of a pair at once: errors are refusals (the build
 * stops, the CLI exits non-zero); warnings are shown and the build goes on. Source and module rules are
 * thrown by the stage that finds them (refusal.ts).
 */
import type { Diagnostic } from '../diagnostic.js';
import type { ObjectFacts, Rule } from './facts.js';
import { callbackTwice } from './module/callback-twice.js';
import { duplicateFunction } from './module/duplicate-function.js';
import { moduleKey } from './module/module-key.js';
import { moduleTracepointInert } from './module/module-tracepoint-inert.js';
import { nothingToReplace } from './module/nothing-to-replace.js';
import { reservedName } from './module/reserved-name.js';
import { dataChanged } from './object/data-changed.js';
import { dataNewGlobal } from './object/data-new-global.js';
import { ibtEndbr } from './object/ibt-endbr.js';
import { initChanged } from './object/init-changed.js';
import { inlineSpread } from './object/inline-spread.js';
import { newSpecialObject } from './object/new-special-object.js';
import { noChange } from './object/no-change.js';
import { noDataSections } from './object/no-data-sections.js';
import { noFunctionSections } from './object/no-function-sections.js';
import { notrace } from './object/notrace.js';
import { renamedSymbol } from './object/renamed-symbol.js';
import { returnThunk } from './object/return-thunk.js';
import { signatureChanged } from './object/signature-changed.js';
import { specialEntry } from './object/special-entry.js';
import { tableLayout } from './object/table-layout.js';
import type { RuleInfo } from './refusal.js';
import { diffFuzz } from './source/diff-fuzz.js';
import { diffOffset } from './source/diff-offset.js';
import { missingDefinitions } from './source/missing-definitions.js';
import { notShipped } from './source/not-shipped.js';
import { structChangedRule } from './source/struct-changed.js';
import { syscallNotInFile } from './source/syscall-not-in-file.js';
import { unitHeaderWide } from './source/unit-header-wide.js';
import { unitNewFile } from './source/unit-new-file.js';
import { unitNone } from './source/unit-none.js';
import { unitNotBuilt } from './source/unit-not-built.js';
import { unitUnsupported } from './source/unit-unsupported.js';

/** The rules run over every object comparison, in the order their diagnostics are reported. */
export const RULES: readonly Rule[] = [
  dataChanged,
  dataNewGlobal,
  initChanged,
  notrace,
  renamedSymbol,
  specialEntry,
  signatureChanged,
  inlineSpread,
  noFunctionSections,
  newSpecialObject,
  noDataSections,
  tableLayout,
  ibtEndbr,
  returnThunk,
];

export const SOURCE_RULES: readonly RuleInfo[] = [
  diffOffset,
  diffFuzz,
  structChangedRule,
  unitUnsupported,
  unitNewFile,
  unitHeaderWide,
  unitNone,
  unitNotBuilt,
  notShipped,
  missingDefinitions,
  syscallNotInFile,
];

export const OBJECT_RULES: readonly RuleInfo[] = [...RULES, noChange];

export const MODULE_RULES: readonly RuleInfo[] = [
  moduleKey,
  moduleTracepointInert,
  duplicateFunction,
  reservedName,
  nothingToReplace,
  callbackTwice,
];

/** Every rule of the book. */
export const ALL_RULES: readonly RuleInfo[] = [...SOURCE_RULES, ...OBJECT_RULES, ...MODULE_RULES];

export function runRules(facts: ObjectFacts): { refusals: Diagnostic[]; warnings: Diagnostic[] } {
  const all = RULES.flatMap((r) => r.check(facts));
  return {
    refusals: all.filter((d) => d.severity === 'error'),
    warnings: all.filter((d) => d.severity !== 'error'),
  };
}

/*
 * objdiff: compare an original and a patched object file and decide what a livepatch must carry.
 *
 * The steps, each in its own file: correlate (correlate.ts) pairs the symbols of both objects; the
 * verdicts (verdicts.ts) give every function and data object of the patched side one record — its twin,
 * same / changed / new with the reason — using the relocation-aware comparison (compare.ts); the
 * selection (select.ts) marks on those records what the diff object carries and how it references the
 * rest; the rules of check/ turn what cannot be carried into refusals. The result is the model every
 * later stage reads (write.ts writes the diff object from it, klp/ names its references).
 */
import type { ObjectFacts } from '../check/facts.js';
import { runRules } from '../check/rules.js';
import type { Diagnostic } from '../diagnostic.js';
import { readElfFile } from '../elf/index.js';
import type { ElfObject } from '../elf/model.js';
import { proveClones } from './clones.js';
import type { CanonicalName, SymbolMap } from './compare.js';
import { correlate } from './correlate.js';
import { planSelection, type Selection } from './select.js';
import { DEFAULT_TABLE_SIZES, type TableSizes } from './special-tables.js';
import { diffSides, verdicts } from './verdicts.js';

export { isDataSection } from './verdicts.js';

export interface DiffContext {
  /** source file the objects were compiled from, for messages (e.g. `fs/proc/meminfo.c`) */
  source?: string;
  /** function prototypes of the original and patched unit (gcc -aux-info), for KLP-SIGNATURE-CHANGED */
  prototypes?: ObjectFacts['prototypes'];
  /** functions (by name) and sections the patch author told the diff to leave out (KPATCH_IGNORE_*) */
  ignore?: { functions: ReadonlySet<string>; sections: ReadonlySet<string> };
  /** entry sizes of the special tables: the target kernel's (kernel-tables.ts); x86-64 6.1's if absent */
  tables?: TableSizes;
  /** what the target kernel requires of carried code (IBT, return thunks): target-code.ts */
  target?: ObjectFacts['target'];
  /** whether the running kernel's object defines a global of a name (its shipped symbols), for KLP-DATA-NEW-GLOBAL */
  kernelGlobal?: ObjectFacts['kernelGlobal'];
}

/** The comparison of one object pair: the records of check/facts.ts, their refusals, the selection. */
export interface ObjectDiff extends ObjectFacts {
  /** errors: what cannot be carried; non-empty means no livepatch can be made from this pair */
  refusals: Diagnostic[];
  /** shown, not fatal */
  warnings: Diagnostic[];
  /** whole sections and special-table entries the diff object carries */
  selection: Selection;
  /** the patched object's symbols by section, for naming what a section-relative reference hits */
  map: SymbolMap;
  /** how a patched symbol is called across both objects: its twin's name, `new:<name>` without one */
  pCanon: CanonicalName;
  /** the special tables' entry sizes this diff was split with */
  tables: TableSizes;
}

/** Compare two objects already in memory. */
export function diffLoaded(
  original: ElfObject,
  patched: ElfObject,
  originalPath: string,
  patchedPath: string,
  ctx: DiffContext = {},
): ObjectDiff {
  const sides = diffSides(original, patched, correlate(original, patched));
  const v = verdicts(sides);
  for (const f of v.functions)
    if (ctx.ignore?.functions.has(f.name) || ctx.ignore?.sections.has(f.symbol.section?.name ?? '')) {
      f.change = 'same';
      f.reason = 'left out by the patch author (KPATCH_IGNORE_FUNCTION / KPATCH_IGNORE_SECTION)';
    }
  const tables = ctx.tables ?? DEFAULT_TABLE_SIZES;
  const chosen = planSelection(sides, v, tables);
  proveClones(sides, v.functions);
  const facts: ObjectFacts = {
    originalPath,
    patchedPath,
    original,
    patched,
    functions: v.functions,
    removedFunctions: v.removedFunctions,
    data: v.data,
    references: chosen.references,
    uncarried: chosen.uncarried,
    tableLayouts: chosen.tableLayouts,
    ...(ctx.prototypes ? { prototypes: ctx.prototypes } : {}),
    ...(ctx.target ? { target: ctx.target } : {}),
    ...(ctx.kernelGlobal ? { kernelGlobal: ctx.kernelGlobal } : {}),
  };
  const { refusals, warnings } = runRules(facts);
  return {
    ...facts,
    refusals,
    warnings,
    selection: chosen.selection,
    map: sides.pMap,
    pCanon: sides.pCanon,
    tables,
  };
}

/** Read and compare an original and a patched object file. */
export async function diffObjects(
  originalPath: string,
  patchedPath: string,
  ctx: DiffContext = {},
): Promise<ObjectDiff> {
  const [original, patched] = await Promise.all([readElfFile(originalPath), readElfFile(patchedPath)]);
  return diffLoaded(original, patched, originalPath, patchedPath, ctx);
}

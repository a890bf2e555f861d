/*
 * objdiff: compare an original and a patched object file and decide what a livepatch must carry.
 *
 * The three steps, each in its own file: correlate (objdiff-correlate.ts) pairs the symbols of both
 * objects, compare (objdiff-compare.ts) says whether a pair means the same thing, select
 * (objdiff-select.ts) picks the changed and new functions with everything they need. Here they are
 * put together: every function and data object gets a verdict (same / changed / new, with the reason),
 * the safety rules of check/ turn what cannot be carried into refusals, and the result can write the
 * diff object holding only what the livepatch needs.
 */

import type { Change, DataVerdict, FunctionVerdict, ObjectFacts } from '../check/facts.js';
import { runRules } from '../check/rules.js';
import type { Diagnostic } from '../diagnostic.js';
import { SHF, STT } from '../elf/constants.js';
import { readElfFile } from '../elf/index.js';
import type { ElfObject, ElfSection, ElfSymbol } from '../elf/model.js';
import { type CanonicalName, compareSymbol, relocationsIn, resolveTarget, SymbolMap } from './compare.js';
import { correlate } from './correlate.js';
import { planSelection, type SelectionPlan } from './select.js';

export interface DiffContext {
  /** source file the objects were compiled from, for messages (e.g. `fs/proc/meminfo.c`) */
  source?: string;
  /** function prototypes of the original and patched unit (gcc -aux-info), for KLP-SIGNATURE-CHANGED */
  prototypes?: ObjectFacts['prototypes'];
}

export interface FunctionResult {
  name: string;
  change: Change;
  reason?: string;
  /** name in the original object when the compiler renamed it */
  originalName?: string;
  /** bound as in the original (`local` functions need a sympos in the running kernel) */
  binding: 'local' | 'global' | 'weak';
  /** section of the patched function */
  section: string;
  /** a `.cold` part, carried with its parent */
  parent?: string;
}

export interface DataResult {
  name: string;
  change: Change;
  reason?: string;
  writable: boolean;
}

export interface ObjectDiff {
  originalPath: string;
  patchedPath: string;
  functions: FunctionResult[];
  data: DataResult[];
  removedFunctions: string[];
  /** errors: what cannot be carried; non-empty means no livepatch can be made from this pair */
  refusals: Diagnostic[];
  /** shown, not fatal */
  warnings: Diagnostic[];
  /** the objects and the verdicts, for writing the diff object */
  facts: ObjectFacts;
  selection: SelectionPlan;
}

const SKIP_DATA =
  /^(__UNIQUE_ID_|__initcall|__exitcall|__setup_|__ksymtab|__kstrtab|__kcrctab|__param|__mod_|__addressable_|__export_symbol)/;

/** Sections whose objects are program data (as opposed to kernel tables such as __ksymtab or .modinfo). */
export function isDataSection(s: ElfSection): boolean {
  if ((s.flags & SHF.ALLOC) === 0 || (s.flags & SHF.EXECINSTR) !== 0) return false;
  return /^\.(data|bss|rodata|init\.data|exit\.data|ref\.data|init\.rodata|tbss|tdata)(\.|$)/.test(s.name);
}

function bindingOf(s: ElfSymbol): 'local' | 'global' | 'weak' {
  return s.bind === 0 ? 'local' : s.bind === 2 ? 'weak' : 'global';
}

/** Whether a function has an ftrace hook: a `__fentry__` call at its start or an mcount-table entry. */
function traceableSet(obj: ElfObject, map: SymbolMap): Set<ElfSymbol> {
  const out = new Set<ElfSymbol>();
  for (const name of ['__mcount_loc', '__patchable_function_entries']) {
    for (const table of obj.sections.filter((s) => s.name === name)) {
      for (const rel of relocationsIn(obj, table)) {
        const sym = rel.symbol;
        if (!sym?.section) continue;
        const pos = sym.type === STT.SECTION ? Number(rel.addend) : Number(sym.value + rel.addend);
        for (const f of map.symbolsIn(sym.section)) {
          const v = Number(f.value);
          if (f.type === STT.FUNC && pos >= v && pos < v + 16) out.add(f);
        }
      }
    }
  }
  for (const s of obj.symbols) {
    if (s.type !== STT.FUNC || !s.section || out.has(s)) continue;
    const start = Number(s.value);
    if (relocationsIn(obj, s.section, start, start + 16).some((r) => r.symbol?.name === '__fentry__'))
      out.add(s);
  }
  return out;
}

/** Compare two objects already in memory. */
export function diffLoaded(
  original: ElfObject,
  patched: ElfObject,
  originalPath: string,
  patchedPath: string,
  ctx: DiffContext = {},
): ObjectDiff {
  const corr = correlate(original, patched);
  const oMap = new SymbolMap(original);
  const pMap = new SymbolMap(patched);
  const oCanon: CanonicalName = (s) => s.name;
  const pCanon: CanonicalName = (s) => corr.toOriginal.get(s)?.name ?? `new:${s.name}`;
  const oTrace = traceableSet(original, oMap);
  const pTrace = traceableSet(patched, pMap);

  // callers/users: who references whom in the patched object
  const refs = new Map<ElfSymbol, Set<string>>();
  const patchedFunctions = patched.symbols.filter((s) => s.type === STT.FUNC && s.section !== null);
  for (const f of patchedFunctions) {
    const start = Number(f.value);
    for (const rel of relocationsIn(patched, f.section!, start, start + (f.size || f.section!.size))) {
      const t = resolveTarget(rel, pMap, pCanon);
      if (!t.symbol || t.symbol === f) continue;
      const set = refs.get(t.symbol) ?? new Set<string>();
      set.add(f.name);
      refs.set(t.symbol, set);
    }
  }
  const usersOf = (s: ElfSymbol) => [...(refs.get(s) ?? [])].sort();

  const functions: FunctionVerdict[] = patchedFunctions.map((p) => {
    const o = corr.toOriginal.get(p);
    const cold = /^(.*)\.cold(\.\d+)?$/.exec(p.name);
    const base = {
      name: p.name,
      symbol: p,
      traceable: pTrace.has(p),
      originalTraceable: o ? oTrace.has(o) : pTrace.has(p),
      callers: usersOf(p),
      ...(cold ? { parent: cold[1]! } : {}),
    };
    if (!o) return { ...base, change: 'new' as const, reason: 'not in the original object' };
    const d = compareSymbol(
      { obj: original, map: oMap, symbol: o, canon: oCanon },
      { obj: patched, map: pMap, symbol: p, canon: pCanon },
    );
    return {
      ...base,
      ...(o.name !== p.name ? { originalName: o.name } : {}),
      original: o,
      change: d.same ? ('same' as const) : ('changed' as const),
      ...(d.reason ? { reason: d.reason } : {}),
    };
  });
  // a changed cold part changes its parent: they are one function split in two
  for (const f of functions) {
    if (!f.parent || f.change === 'same') continue;
    const parent = functions.find((g) => g.name === f.parent || g.originalName === f.parent);
    if (parent && parent.change === 'same') {
      parent.change = 'changed';
      parent.reason = `its cold part ${f.name} changed: ${f.reason ?? ''}`.trim();
    }
  }
  const removedFunctions = original.symbols
    .filter((s) => s.type === STT.FUNC && s.section !== null && !corr.toPatched.has(s))
    .map((s) => s.name);

  const data: DataVerdict[] = patched.symbols
    .filter(
      (s) =>
        s.type === STT.OBJECT && s.section !== null && isDataSection(s.section) && !SKIP_DATA.test(s.name),
    )
    .map((p) => {
      const o = corr.toOriginal.get(p);
      const base = {
        name: p.name,
        symbol: p,
        writable: (p.section!.flags & SHF.WRITE) !== 0,
        users: usersOf(p),
      };
      if (!o) return { ...base, change: 'new' as const, reason: 'not in the original object' };
      const d = compareSymbol(
        { obj: original, map: oMap, symbol: o, canon: oCanon },
        { obj: patched, map: pMap, symbol: p, canon: pCanon },
      );
      return {
        ...base,
        ...(o.name !== p.name ? { originalName: o.name } : {}),
        original: o,
        change: d.same ? ('same' as const) : ('changed' as const),
        ...(d.reason ? { reason: d.reason } : {}),
      };
    });

  const selection = planSelection({ original, patched, functions, data, pMap, pCanon, corr });
  const facts: ObjectFacts = {
    originalPath,
    patchedPath,
    original,
    patched,
    functions,
    removedFunctions,
    data,
    uncarried: selection.uncarried,
    sectionOf: (s) => s.section,
    ...(ctx.prototypes ? { prototypes: ctx.prototypes } : {}),
  };
  const { refusals, warnings } = runRules(facts);
  return {
    originalPath,
    patchedPath,
    functions: functions.map((f) => ({
      name: f.name,
      change: f.change,
      ...(f.reason ? { reason: f.reason } : {}),
      ...(f.originalName ? { originalName: f.originalName } : {}),
      binding: bindingOf(f.original ?? f.symbol),
      section: f.symbol.section?.name ?? '',
      ...(f.parent ? { parent: f.parent } : {}),
    })),
    data: data.map((d) => ({
      name: d.name,
      change: d.change,
      writable: d.writable,
      ...(d.reason ? { reason: d.reason } : {}),
    })),
    removedFunctions,
    refusals: [...refusals, ...selection.refusals],
    warnings,
    facts,
    selection,
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

/*
 * Verdicts: one record per function and data object of the patched object — its twin, and whether it
 * is the same, changed or new (with the reason).
 *
 * The twin comes from the correlation, the verdict from the relocation-aware comparison. A `.cold` part
 * is one function with its parent, split in two by the compiler: a changed cold part changes its parent.
 * A function prefix (`__pfx_foo`, prefix.ts) is a part of its function the same way.
 * Who references whom (callers of a function, users of a datum) is read from the patched object once, and
 * whether a function has an ftrace hook from both objects.
 */
import type { DataDiff, FunctionDiff, SymbolDiff } from '../check/facts.js';
import { SHF, STT } from '../elf/constants.js';
import type { ElfObject, ElfSection, ElfSymbol } from '../elf/model.js';
import { type CanonicalName, compareSymbol, relocationsIn, resolveTarget, SymbolMap } from './compare.js';
import type { Correlation } from './correlate.js';
import { prefixedName, prefixesOf, prefixSet } from './prefix.js';

const SKIP_DATA =
  /^(__UNIQUE_ID_|__initcall|__exitcall|__setup_|__ksymtab|__kstrtab|__kcrctab|__param|__mod_|__addressable_|__export_symbol)/;

/** Sections whose objects are program data (as opposed to kernel tables such as __ksymtab or .modinfo). */
export function isDataSection(s: ElfSection): boolean {
  if ((s.flags & SHF.ALLOC) === 0 || (s.flags & SHF.EXECINSTR) !== 0) return false;
  return /^\.(data|bss|rodata|init\.data|exit\.data|ref\.data|init\.rodata|tbss|tdata)(\.|$)/.test(s.name);
}

/** Both objects, their symbol maps and the correlation's names: what comparing a pair needs. */
export interface DiffSides {
  original: ElfObject;
  patched: ElfObject;
  corr: Correlation;
  oMap: SymbolMap;
  pMap: SymbolMap;
  /** a patched symbol by its twin's name, `new:<name>` when it has none */
  pCanon: CanonicalName;
}

export function diffSides(original: ElfObject, patched: ElfObject, corr: Correlation): DiffSides {
  return {
    original,
    patched,
    corr,
    oMap: new SymbolMap(original),
    pMap: new SymbolMap(patched),
    pCanon: (s) => corr.toOriginal.get(s)?.name ?? `new:${s.name}`,
  };
}

/** Whether a function has an ftrace hook: a `__fentry__` call at its start or an mcount-table entry. */
function traceableSet(obj: ElfObject, map: SymbolMap): Set<ElfSymbol> {
  const out = new Set<ElfSymbol>();
  for (const table of obj.sections) {
    if (table.name !== '__mcount_loc' && table.name !== '__patchable_function_entries') continue;
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
  // an entry at a function's prefix (-fpatchable-function-entry=16,16 counts from the padding) is its hook
  for (const [f, pfx] of prefixesOf(obj.symbols)) if (out.has(pfx)) out.add(f);
  for (const s of obj.symbols) {
    if (s.type !== STT.FUNC || !s.section || out.has(s)) continue;
    const start = Number(s.value);
    if (relocationsIn(obj, s.section, start, start + 16).some((r) => r.symbol?.name === '__fentry__'))
      out.add(s);
  }
  return out;
}

/** Who references whom in the patched object: symbol → the functions referencing it, sorted. */
function referencesIn(sides: DiffSides, functions: ElfSymbol[]): (s: ElfSymbol) => string[] {
  const refs = new Map<ElfSymbol, Set<string>>();
  for (const f of functions) {
    const start = Number(f.value);
    for (const rel of relocationsIn(sides.patched, f.section!, start, start + (f.size || f.section!.size))) {
      const t = resolveTarget(rel, sides.pMap, sides.pCanon);
      if (!t.symbol || t.symbol === f) continue;
      const set = refs.get(t.symbol) ?? new Set<string>();
      set.add(f.name);
      refs.set(t.symbol, set);
    }
  }
  return (s) => [...(refs.get(s) ?? [])].sort();
}

/** What every record of a patched symbol says: its twin, its change and why; not yet included. */
function symbolRecord(sides: DiffSides, p: ElfSymbol): SymbolDiff {
  const o = sides.corr.toOriginal.get(p);
  if (!o)
    return { name: p.name, symbol: p, change: 'new', reason: 'not in the original object', included: false };
  const d = compareSymbol(
    { obj: sides.original, map: sides.oMap, symbol: o, canon: (s) => s.name },
    { obj: sides.patched, map: sides.pMap, symbol: p, canon: sides.pCanon },
  );
  return {
    name: p.name,
    symbol: p,
    twin: o,
    ...(o.name !== p.name ? { originalName: o.name } : {}),
    change: d.same ? 'same' : 'changed',
    ...(d.reason ? { reason: d.reason } : {}),
    included: false,
  };
}

export interface Verdicts {
  functions: FunctionDiff[];
  data: DataDiff[];
  removedFunctions: string[];
}

/** The record of every function and data object of the patched object. */
export function verdicts(sides: DiffSides): Verdicts {
  const { original, patched, corr } = sides;
  const patchedFunctions = patched.symbols.filter((s) => s.type === STT.FUNC && s.section !== null);
  const usersOf = referencesIn(sides, patchedFunctions);
  const oTrace = traceableSet(original, sides.oMap);
  const pTrace = traceableSet(patched, sides.pMap);
  const prefixes = prefixSet(patched.symbols);
  const functions: FunctionDiff[] = patchedFunctions.map((p) => {
    const record = symbolRecord(sides, p);
    const cold = /^(.*)\.cold(\.\d+)?$/.exec(p.name);
    const parent = prefixes.has(p) ? prefixedName(p.name) : cold?.[1];
    return {
      ...record,
      traceable: pTrace.has(p),
      originalTraceable: record.twin ? oTrace.has(record.twin) : pTrace.has(p),
      callers: usersOf(p),
      ...(parent !== undefined ? { parent } : {}),
    };
  });
  coldChangesParent(functions);
  const data: DataDiff[] = patched.symbols
    .filter(
      (s) =>
        s.type === STT.OBJECT && s.section !== null && isDataSection(s.section) && !SKIP_DATA.test(s.name),
    )
    .map((p) => ({
      ...symbolRecord(sides, p),
      writable: (p.section!.flags & SHF.WRITE) !== 0,
      users: usersOf(p),
    }));
  const oPrefixes = prefixSet(original.symbols);
  const removedFunctions = original.symbols
    .filter((s) => s.type === STT.FUNC && s.section !== null && !corr.toPatched.has(s) && !oPrefixes.has(s))
    .map((s) => s.name);
  return { functions, data, removedFunctions };
}

/** A changed cold part (or prefix) changes its parent: they are one function split in two. */
function coldChangesParent(functions: FunctionDiff[]): void {
  for (const f of functions) {
    if (!f.parent || f.change === 'same') continue;
    const parent = functions.find((g) => g.name === f.parent || g.originalName === f.parent);
    if (parent && parent.change === 'same') {
      parent.change = 'changed';
      parent.reason = `its cold part ${f.name} changed: ${f.reason ?? ''}`.trim();
    }
  }
}

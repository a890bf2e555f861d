/*
 * Selection: what the diff object carries, marked on the diff records.
 *
 * A livepatch carries the changed and new functions, and with them everything that cannot be
 * referenced in the running kernel instead: string literals and other anonymous constants, new static
 * variables, the compiler's split-off `.cold` parts. Everything else a carried function references —
 * unchanged functions, existing variables, kernel symbols — stays a reference to the running kernel
 * (an undefined symbol, later an ordinary module reference or a klp relocation): its record gets the
 * Reference the module builder will name.
 *
 * Special sections are tables about code that live outside it. For the ones whose layout we know, the
 * entries that point into carried functions are kept and the rest dropped; an entry of an unknown
 * table that points into the body of a carried function is recorded as uncarried (the object rules of
 * check/ refuse it), never dropped. A pointer to a function's entry, in any data, is no such entry: calls
 * through it reach the old function, which ftrace redirects to the new one. Nothing here decides a
 * refusal: what cannot be carried is recorded on the model for the rules. A new descriptor of a table the
 * module loader registers from the livepatch module itself (a new pr_debug's `_ddebug`, descriptors.ts)
 * is carried in the diff object's own copy of that table.
 */
import type {
  DataDiff,
  FunctionDiff,
  Reference,
  SymbolDiff,
  TableLayoutProblem,
  UncarriedEntry,
} from '../check/facts.js';
import { SHF, SHN, SHT, STB, STT } from '../elf/constants.js';
import type { ElfRelocation, ElfSection, ElfSymbol } from '../elf/model.js';
import { isStringSection, relocationsIn, resolveTarget } from './compare.js';
import { isDescriptorTable, isWholeDescriptor } from './descriptors.js';
import { isSplitTable, type TableSizes } from './special-tables.js';
import type { DiffSides, Verdicts } from './verdicts.js';

/** Tables whose entries may be dropped without harm: they only describe the old copy. */
const DROPPABLE =
  /^(\.discard|\.note|\.comment|\.modinfo|__ksymtab|___ksymtab|__kcrctab|__kstrtab|_kprobe_blacklist|\.debug|\.BTF|__param|\.init\.|\.exit\.|\.initcall|\.export_symbol|__export)/;

/** What the diff object carries that is not one symbol's record: whole sections and table entries. */
export interface Selection {
  /** patched sections carried whole (function sections, strings, anonymous constants, new data) */
  sections: Set<ElfSection>;
  /** special tables: section → offsets of kept entries */
  tables: Map<ElfSection, number[]>;
  /** descriptor tables (descriptors.ts): section → the new descriptors carried code uses, in order */
  descriptors: Map<ElfSection, ElfSymbol[]>;
}

export interface SelectionResult {
  selection: Selection;
  references: Map<ElfSymbol, Reference>;
  uncarried: UncarriedEntry[];
  tableLayouts: TableLayoutProblem[];
}

/** The state of one selection walk over the patched object. */
interface Walk extends SelectionResult {
  sides: DiffSides;
  /** entry sizes of the special tables, the target kernel's */
  tables: TableSizes;
  /** the record of each patched function and data object */
  records: Map<ElfSymbol, SymbolDiff>;
  /** carried functions (patched symbols) */
  selected: Set<ElfSymbol>;
  newData: Set<ElfSymbol>;
  /** carried sections whose relocations are still to be followed */
  work: ElfSection[];
}

export function planSelection(sides: DiffSides, v: Verdicts, tables: TableSizes): SelectionResult {
  const w: Walk = {
    sides,
    tables,
    records: new Map<ElfSymbol, SymbolDiff>([...v.functions, ...v.data].map((r) => [r.symbol, r])),
    selected: new Set(),
    newData: new Set(v.data.filter((d) => d.change === 'new').map((d) => d.symbol)),
    work: [],
    selection: { sections: new Set(), tables: new Map(), descriptors: new Map() },
    references: new Map(),
    uncarried: [],
    tableLayouts: [],
  };
  selectFunctions(w, v.functions);
  drain(w);
  keepTableEntries(w);
  followKeptEntries(w);
  drain(w);
  pairOrcEntries(w);
  findUncarried(w);
  markIncluded(w, v.functions, v.data);
  return {
    selection: w.selection,
    references: w.references,
    uncarried: w.uncarried,
    tableLayouts: w.tableLayouts,
  };
}

function include(w: Walk, s: ElfSection): void {
  if (w.selection.sections.has(s)) return;
  w.selection.sections.add(s);
  w.work.push(s);
}

/** Changed and new functions, with their cold parts whatever the parts' own verdict. */
function selectFunctions(w: Walk, functions: FunctionDiff[]): void {
  const carried = functions.filter((f) => f.change !== 'same' && !f.parent);
  const parents = new Set(carried.flatMap((f) => [f.name, ...(f.originalName ? [f.originalName] : [])]));
  for (const f of carried) w.selected.add(f.symbol);
  for (const f of functions) if (f.parent && parents.has(f.parent)) w.selected.add(f.symbol);
  for (const sym of w.selected) {
    const sec = sym.section!;
    const others = w.sides.pMap.symbolsIn(sec).filter((s) => s.type === STT.FUNC && !w.selected.has(s));
    if (others.length > 0) {
      w.records.get(sym)!.sharesSectionWith = others.map((s) => s.name);
      continue;
    }
    include(w, sec);
  }
}

/** The reference carried code leaves to the running kernel for `sym`, on its record too. */
function referTo(w: Walk, sym: ElfSymbol): void {
  if (w.references.has(sym)) return;
  const twin = w.sides.corr.toOriginal.get(sym);
  const ref: Reference = {
    name: twin?.name ?? sym.name,
    local: (twin ?? sym).bind === STB.LOCAL && sym.section !== null,
    definedHere: sym.section !== null,
    // defined here, new, and not program data: a new entry of a kernel table (a pr_debug descriptor,
    // a tracepoint...) that neither exists in the running kernel nor can be carried on its own
    twinless: !twin && sym.section !== null,
    type: sym.type === STT.FUNC ? 'func' : sym.type === STT.OBJECT ? 'object' : 'other',
  };
  w.references.set(sym, ref);
  const record = w.records.get(sym);
  if (record) record.reference = ref;
}

/** Decide how a reference from carried code is satisfied. */
function follow(w: Walk, rel: ElfRelocation) {
  const sym = rel.symbol;
  if (!sym) return;
  if (sym.section === null) {
    if (sym.shndx === SHN.UNDEF) referTo(w, sym);
    return;
  }
  if (sym.type === STT.SECTION) {
    if (w.selection.sections.has(sym.section)) return;
    if (isStringSection(sym.section)) return include(w, sym.section);
    const t = resolveTarget(rel, w.sides.pMap, w.sides.pCanon);
    if (!t.symbol) return include(w, sym.section); // anonymous data or code: carry it
    return followSymbol(w, t.symbol);
  }
  followSymbol(w, sym);
}

function followSymbol(w: Walk, sym: ElfSymbol) {
  const sec = sym.section!;
  if (w.selected.has(sym) || w.selection.sections.has(sec)) return;
  if (isDescriptorTable(sec) && !w.sides.corr.toOriginal.has(sym) && isWholeDescriptor(sym))
    return carryDescriptor(w, sym);
  if (sym.type !== STT.FUNC && sym.type !== STT.OBJECT) {
    // an assembler label (`.LC0`) into strings or constants: anonymous, carried with its section
    if (sym.name === '' || sym.name.startsWith('.L')) return include(w, sec);
    // a named label of the running kernel (e.g. a BTF id list filled in at link time): reference it
    if (w.sides.corr.toOriginal.has(sym)) return referTo(w, sym);
    if (/^\.(data|bss|rodata)(\.|$)/.test(sec.name)) return include(w, sec);
    return referTo(w, sym); // new, in a kernel table: refused by its rule
  }
  if (sym.type === STT.OBJECT && w.newData.has(sym)) {
    const shared = w.sides.pMap.symbolsIn(sec).filter((s) => !w.newData.has(s));
    if (shared.length > 0) {
      w.records.get(sym)!.sharesSectionWith = shared.map((s) => s.name);
      return;
    }
    return include(w, sec);
  }
  if (
    sym.type === STT.OBJECT &&
    (sec.flags & SHF.WRITE) === 0 &&
    /\.\d+$/.test(sym.name) &&
    relocationsIn(w.sides.patched, sec).length === 0 &&
    w.sides.pMap.symbolsIn(sec).length === 1
  ) {
    // a numbered static constant (`__func__.3`): plain bytes, carried as a private copy
    return include(w, sec);
  }
  if (sym.type === STT.FUNC && !w.sides.corr.toOriginal.has(sym)) {
    // a new function that is not selected cannot happen (new functions are carried); be safe
    return include(w, sec);
  }
  referTo(w, sym);
}

/** A new descriptor (a new pr_debug's `_ddebug`): carried in the diff object's own table, with what it points to. */
function carryDescriptor(w: Walk, sym: ElfSymbol): void {
  const sec = sym.section!;
  const carried = w.selection.descriptors.get(sec) ?? [];
  if (carried.includes(sym)) return;
  carried.push(sym);
  w.selection.descriptors.set(sec, carried);
  const at = Number(sym.value);
  for (const rel of relocationsIn(w.sides.patched, sec, at, at + sym.size)) follow(w, rel);
}

function drain(w: Walk): void {
  while (w.work.length) {
    const s = w.work.pop()!;
    for (const rel of relocationsIn(w.sides.patched, s)) follow(w, rel);
  }
}

/** The carried symbol a relocation points into, if it points into carried code or data. */
function inSelected(w: Walk, rel: ElfRelocation | undefined): ElfSymbol | undefined {
  if (!rel?.symbol?.section) return undefined;
  if (rel.symbol.type === STT.SECTION) {
    if (!w.selection.sections.has(rel.symbol.section)) return undefined;
    const t = resolveTarget(rel, w.sides.pMap, w.sides.pCanon);
    return t.symbol ?? rel.symbol;
  }
  return w.selected.has(rel.symbol) || w.selection.sections.has(rel.symbol.section) ? rel.symbol : undefined;
}

/** Entries of known special tables whose first field points into carried code. */
function keepTableEntries(w: Walk): void {
  for (const table of w.sides.patched.sections) {
    if (!isSplitTable(w.tables, table.name)) continue;
    const size = w.tables[table.name]!;
    if (table.size % size !== 0) {
      w.tableLayouts.push({ kind: 'entry-size', table: table.name, size: table.size, entrySize: size });
      continue;
    }
    const rels = relocationsIn(w.sides.patched, table);
    const kept: number[] = [];
    for (let at = 0; at < table.size; at += size) {
      const anchor = rels.find((r) => Number(r.offset) === at);
      if (inSelected(w, anchor)) kept.push(at);
    }
    if (kept.length) w.selection.tables.set(table, kept);
  }
}

/** Entries of kept tables may need more (the replacement code of an alternative, a jump label's key). */
function followKeptEntries(w: Walk): void {
  for (const [table, kept] of w.selection.tables) {
    const size = w.tables[table.name]!;
    for (const rel of relocationsIn(w.sides.patched, table)) {
      const off = Number(rel.offset);
      if (kept.includes(off - (off % size))) follow(w, rel);
    }
  }
}

/** `.orc_unwind` runs parallel to `.orc_unwind_ip`: both must hold the same number of entries. */
function pairOrcEntries(w: Walk): void {
  const orcIp = w.sides.patched.section('.orc_unwind_ip');
  const orc = w.sides.patched.section('.orc_unwind');
  if (!orcIp || !w.selection.tables.has(orcIp)) return;
  if (orc && orc.size / w.tables['.orc_unwind']! === orcIp.size / w.tables['.orc_unwind_ip']!) return;
  w.selection.tables.delete(orcIp);
  w.tableLayouts.push({ kind: 'orc-pairs', orcSize: orc?.size ?? 0, orcIpSize: orcIp.size });
}

/** Entries of unknown tables that point into the body of carried code. */
function findUncarried(w: Walk): void {
  for (const s of w.sides.patched.sections) {
    if ((s.flags & SHF.ALLOC) === 0 || (s.flags & SHF.EXECINSTR) !== 0 || w.selection.sections.has(s))
      continue;
    if (w.tables[s.name] !== undefined || s.name === '.orc_unwind' || DROPPABLE.test(s.name)) continue;
    if (/^\.(data|bss|rodata|ref\.data|tdata|tbss)(\.|$)/.test(s.name)) continue; // program data: references to the old copy are redirected by ftrace
    if (s.type === SHT.RELA || s.type === SHT.REL) continue;
    for (const rel of relocationsIn(w.sides.patched, s)) {
      const hit = inSelected(w, rel);
      if (!hit || hit.type !== STT.FUNC) continue;
      // a pointer to the function's entry (an ops table, a sched_class): the running kernel's copy
      // points at the old function, whose entry ftrace redirects. Only an address inside the body
      // describes code and would have to follow it into the patch.
      const at = (rel.symbol?.type === STT.SECTION ? 0n : (rel.symbol?.value ?? 0n)) + rel.addend;
      if (at === hit.value) continue;
      w.uncarried.push({ section: s.name, offset: Number(rel.offset), function: hit.name });
    }
  }
}

/** The verdict records say what is carried: selected functions, data in carried sections. */
function markIncluded(w: Walk, functions: FunctionDiff[], data: DataDiff[]): void {
  for (const f of functions) f.included = w.selected.has(f.symbol);
  for (const d of data) d.included = w.selection.sections.has(d.symbol.section!);
}

/*
 * Selection: what the diff object carries, and the diff object itself.
 *
 * A livepatch carries the changed and new functions, and with them everything that cannot be
 * referenced in the running kernel instead: string literals and other anonymous constants, new static
 * variables, the compiler's split-off `.cold` parts. Everything else a carried function references —
 * unchanged functions, existing variables, kernel symbols — stays a reference to the running kernel
 * (an undefined symbol, later an ordinary module reference or a klp relocation).
 *
 * Special sections are tables about code that live outside it. For the ones whose layout we know, the
 * entries that point into carried functions are kept and the rest dropped; an entry of an unknown
 * table that points into the body of a carried function is reported (check/special-entry.ts), never
 * dropped. A pointer to a function's entry, in any data, is no such entry: calls through it reach the
 * old function, which ftrace redirects to the new one.
 */

import type { DataVerdict, FunctionVerdict, UncarriedEntry } from '../check/facts.js';
import type { Diagnostic } from '../diagnostic.js';
import { SHF, SHN, STB, STT } from '../elf/constants.js';
import {
  type ElfObject,
  ElfObject as ElfObjectClass,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from '../elf/model.js';
import {
  type CanonicalName,
  isStringSection,
  relocationsIn,
  resolveTarget,
  type SymbolMap,
} from './compare.js';
import type { Correlation } from './correlate.js';

/** Tables of fixed-size entries whose first field points at the code the entry is about. */
export const SPECIAL_TABLES: Readonly<Record<string, number>> = {
  __mcount_loc: 8,
  __patchable_function_entries: 8,
  '.return_sites': 4,
  '.retpoline_sites': 4,
  '.call_sites': 4,
  '.ibt_endbr_seal': 4,
  '.kcfi_traps': 4,
  '.static_call_sites': 8,
  __ex_table: 12,
  __bug_table: 12,
  __jump_table: 16,
  '.altinstructions': 12,
  '.orc_unwind_ip': 4,
  /** lock prefixes patched away on UP (s32 each) */
  '.smp_locks': 4,
  /** struct paravirt_patch_site { u8 *instr; u8 type; u8 len; } — 16 bytes with padding */
  '.parainstructions': 16,
};
/** `.orc_unwind` has no relocations: its entries (6 bytes) parallel those of `.orc_unwind_ip`. */
const ORC_ENTRY = 6;

/** Tables whose entries may be dropped without harm: they only describe the old copy. */
const DROPPABLE =
  /^(\.discard|\.note|\.comment|\.modinfo|__ksymtab|___ksymtab|__kcrctab|__kstrtab|_kprobe_blacklist|\.debug|\.BTF|__param|\.init\.|\.exit\.|\.initcall|\.export_symbol|__export)/;

export interface SelectionInput {
  original: ElfObject;
  patched: ElfObject;
  functions: FunctionVerdict[];
  data: DataVerdict[];
  pMap: SymbolMap;
  pCanon: CanonicalName;
  corr: Correlation;
}

/** A reference the diff object leaves to the running kernel. */
export interface ExternalRef {
  /** name in the running kernel (the original object's name) */
  name: string;
  /** defined in the original object as a local symbol: resolved by file and sympos, never by export */
  local: boolean;
  /** defined (local or global) in the original object, i.e. in the same translation unit */
  definedHere: boolean;
  type: 'func' | 'object' | 'other';
}

export interface SelectionPlan {
  /** carried functions (patched symbols) */
  functions: ElfSymbol[];
  /** patched sections carried whole (function sections, strings, anonymous constants, new data) */
  sections: Set<ElfSection>;
  /** special tables: section → offsets of kept entries */
  tables: Map<ElfSection, number[]>;
  /** references left to the running kernel, by the patched symbol they replace (or the undefined symbol) */
  externals: Map<ElfSymbol, ExternalRef>;
  uncarried: UncarriedEntry[];
  refusals: Diagnostic[];
}

export function planSelection(input: SelectionInput): SelectionPlan {
  const { patched, functions, data, pMap, pCanon, corr } = input;
  const carried = functions.filter((f) => f.change !== 'same' && !f.parent);
  const carriedNames = new Set(carried.map((f) => f.name));
  // cold parts travel with their parent, whatever their own verdict
  const selected = new Set<ElfSymbol>(carried.map((f) => f.symbol));
  for (const f of functions)
    if (f.parent && (carriedNames.has(f.parent) || carried.some((c) => c.originalName === f.parent)))
      selected.add(f.symbol);
  const newData = new Set(data.filter((d) => d.change === 'new').map((d) => d.symbol));

  const sections = new Set<ElfSection>();
  const tables = new Map<ElfSection, number[]>();
  const externals = new Map<ElfSymbol, ExternalRef>();
  const refusals: Diagnostic[] = [];
  const uncarried: UncarriedEntry[] = [];
  const work: ElfSection[] = [];
  const include = (s: ElfSection) => {
    if (sections.has(s)) return;
    sections.add(s);
    work.push(s);
  };

  for (const f of selected) {
    const sec = f.section!;
    const others = pMap.symbolsIn(sec).filter((s) => s.type === STT.FUNC && !selected.has(s));
    if (others.length > 0) {
      refusals.push({
        severity: 'error',
        code: 'OBJDIFF-NO-FUNCTION-SECTIONS',
        message: `function \`${f.name}\` shares section ${sec.name} with ${others.map((s) => s.name).join(', ')}`,
        location: { file: patched.file, section: sec.name, symbol: f.name },
        why: 'a changed function can only be cut out of an object compiled with one section per function',
        hint: 'compile the original and patched objects with -ffunction-sections -fdata-sections',
      });
      continue;
    }
    include(sec);
  }

  const externalFor = (sym: ElfSymbol): void => {
    if (externals.has(sym)) return;
    const orig = corr.toOriginal.get(sym);
    if (!orig && sym.section !== null) {
      // defined here, new, and not program data: a new entry of a kernel table (a pr_debug descriptor,
      // a tracepoint...) that neither exists in the running kernel nor can be carried on its own
      refusals.push({
        severity: 'error',
        code: 'OBJDIFF-NEW-SPECIAL-OBJECT',
        message: `new \`${sym.name}\` in section ${sym.section.name} cannot be carried`,
        location: { file: patched.file, section: sym.section.name, symbol: sym.name },
        why: 'the patched code uses a new object of a kernel table (for example a new pr_debug or tracepoint site); the running kernel has no such object and the table is registered as a whole',
        hint: 'avoid adding the table entry in the livepatch (e.g. use pr_info instead of a new pr_debug)',
      });
    }
    externals.set(sym, {
      name: orig?.name ?? sym.name,
      local: (orig ?? sym).bind === STB.LOCAL && sym.section !== null,
      definedHere: sym.section !== null,
      type: sym.type === STT.FUNC ? 'func' : sym.type === STT.OBJECT ? 'object' : 'other',
    });
  };

  /** Decide how a reference from carried code is satisfied. */
  const follow = (rel: ElfRelocation) => {
    const sym = rel.symbol;
    if (!sym) return;
    if (sym.section === null) {
      if (sym.shndx === SHN.UNDEF) externalFor(sym);
      return;
    }
    if (sym.type === STT.SECTION) {
      if (sections.has(sym.section)) return;
      if (isStringSection(sym.section)) return include(sym.section);
      const t = resolveTarget(rel, pMap, pCanon);
      if (!t.symbol) return include(sym.section); // anonymous data or code: carry it
      return followSymbol(t.symbol);
    }
    followSymbol(sym);
  };
  const followSymbol = (sym: ElfSymbol) => {
    if (selected.has(sym) || sections.has(sym.section!)) return;
    if (sym.type !== STT.FUNC && sym.type !== STT.OBJECT) {
      // an assembler label (`.LC0`) into strings or constants: anonymous, carried with its section
      if (sym.name === '' || sym.name.startsWith('.L')) return include(sym.section!);
      // a named label of the running kernel (e.g. a BTF id list filled in at link time): reference it
      if (corr.toOriginal.has(sym)) return externalFor(sym);
      if (/^\.(data|bss|rodata)(\.|$)/.test(sym.section!.name)) return include(sym.section!);
      return externalFor(sym); // new, in a kernel table: refused there
    }
    if (sym.type === STT.OBJECT && newData.has(sym)) {
      const shared = pMap.symbolsIn(sym.section!).filter((s) => !newData.has(s));
      if (shared.length > 0) {
        refusals.push({
          severity: 'error',
          code: 'OBJDIFF-NO-DATA-SECTIONS',
          message: `new variable \`${sym.name}\` shares section ${sym.section!.name} with ${shared.map((s) => s.name).join(', ')}`,
          location: { file: patched.file, section: sym.section!.name, symbol: sym.name },
          why: 'a new variable can only be carried alone: copying its section would duplicate the existing ones',
          hint: 'compile the original and patched objects with -ffunction-sections -fdata-sections',
        });
        return;
      }
      return include(sym.section!);
    }
    if (
      sym.type === STT.OBJECT &&
      (sym.section!.flags & SHF.WRITE) === 0 &&
      /\.\d+$/.test(sym.name) &&
      relocationsIn(patched, sym.section!).length === 0 &&
      pMap.symbolsIn(sym.section!).length === 1
    ) {
      // a numbered static constant (`__func__.3`): plain bytes, carried as a private copy
      return include(sym.section!);
    }
    if (sym.type === STT.FUNC && !corr.toOriginal.has(sym)) {
      // a new function that is not selected cannot happen (new functions are carried); be safe
      return include(sym.section!);
    }
    externalFor(sym);
  };

  const drain = () => {
    while (work.length) {
      const s = work.pop()!;
      for (const rel of relocationsIn(patched, s)) follow(rel);
    }
  };
  drain();

  // special tables
  const inSelected = (rel: ElfRelocation | undefined): ElfSymbol | undefined => {
    if (!rel?.symbol?.section) return undefined;
    if (rel.symbol.type === STT.SECTION) {
      if (!sections.has(rel.symbol.section)) return undefined;
      const t = resolveTarget(rel, pMap, pCanon);
      return t.symbol ?? rel.symbol;
    }
    return selected.has(rel.symbol) || sections.has(rel.symbol.section) ? rel.symbol : undefined;
  };
  for (const table of patched.sections) {
    const size = SPECIAL_TABLES[table.name];
    if (size === undefined) continue;
    const rels = relocationsIn(patched, table);
    if (table.size % size !== 0) {
      refusals.push({
        severity: 'error',
        code: 'OBJDIFF-TABLE-LAYOUT',
        message: `${table.name} is ${table.size} bytes, not a whole number of ${size}-byte entries`,
        location: { file: patched.file, section: table.name },
        why: 'the entry layout of this table differs from what Suture knows for this kernel',
        hint: 'report the kernel version; the table cannot be split safely',
      });
      continue;
    }
    const kept: number[] = [];
    for (let at = 0; at < table.size; at += size) {
      const anchor = rels.find((r) => Number(r.offset) === at);
      if (inSelected(anchor)) kept.push(at);
    }
    if (kept.length) tables.set(table, kept);
  }
  // entries of kept tables may need more (the replacement code of an alternative, a jump label's key)
  for (const [table, kept] of tables) {
    const size = SPECIAL_TABLES[table.name]!;
    for (const rel of relocationsIn(patched, table)) {
      const off = Number(rel.offset);
      if (kept.includes(off - (off % size))) follow(rel);
    }
  }
  drain();

  // .orc_unwind runs parallel to .orc_unwind_ip: both must hold the same number of entries
  const orcIp = patched.section('.orc_unwind_ip');
  const orc = patched.section('.orc_unwind');
  if (
    orcIp &&
    tables.has(orcIp) &&
    (!orc || orc.size / ORC_ENTRY !== orcIp.size / SPECIAL_TABLES['.orc_unwind_ip']!)
  ) {
    tables.delete(orcIp);
    refusals.push({
      severity: 'error',
      code: 'OBJDIFF-TABLE-LAYOUT',
      message: `.orc_unwind (${orc?.size ?? 0} bytes) does not match .orc_unwind_ip (${orcIp.size} bytes)`,
      location: { file: patched.file, section: '.orc_unwind' },
      why: 'ORC unwind entries come in pairs; without the pair the unwinder cannot walk through the patched code',
      hint: 'rebuild the objects with the kernel’s objtool (kbuild does this)',
    });
  }

  // unknown tables pointing into carried code
  for (const s of patched.sections) {
    if ((s.flags & SHF.ALLOC) === 0 || (s.flags & SHF.EXECINSTR) !== 0 || sections.has(s)) continue;
    if (SPECIAL_TABLES[s.name] !== undefined || s.name === '.orc_unwind' || DROPPABLE.test(s.name)) continue;
    if (/^\.(data|bss|rodata|ref\.data|tdata|tbss)(\.|$)/.test(s.name)) continue; // program data: references to the old copy are redirected by ftrace
    if (s.type === 4 || s.type === 9) continue;
    for (const rel of relocationsIn(patched, s)) {
      const hit = inSelected(rel);
      if (!hit || hit.type !== STT.FUNC) continue;
      // a pointer to the function's entry (an ops table, a sched_class): the running kernel's copy
      // points at the old function, whose entry ftrace redirects. Only an address inside the body
      // describes code and would have to follow it into the patch.
      const at = (rel.symbol?.type === STT.SECTION ? 0n : (rel.symbol?.value ?? 0n)) + rel.addend;
      if (at === hit.value) continue;
      uncarried.push({ section: s.name, offset: Number(rel.offset), function: hit.name });
    }
  }
  return { functions: [...selected], sections, tables, externals, uncarried, refusals };
}

export interface DiffObjectOptions {
  /** the name an external reference gets in the diff object (default: its name in the running kernel) */
  externalName?: (ref: ExternalRef) => string;
  /** carried functions that must be reachable from other objects (klp_func.new_func): made global */
  exportFunctions?: boolean;
}

function copySection(s: ElfSection): ElfSection {
  return {
    name: s.name,
    type: s.type,
    flags: s.flags,
    addr: 0n,
    offset: 0,
    size: s.size,
    link: null,
    info: 0,
    infoSection: null,
    addralign: s.addralign,
    entsize: s.entsize,
    data: s.data,
  };
}

/**
 * Build the diff object: the carried sections, the kept table entries, their relocations, and the
 * symbols they need. Returns a new ElfObject (the input objects are left as they are).
 */
export function buildDiffObject(
  patched: ElfObject,
  plan: SelectionPlan,
  pMap: SymbolMap,
  pCanon: CanonicalName,
  opts: DiffObjectOptions = {},
): ElfObject {
  const out: ElfSection[] = [];
  const copies = new Map<ElfSection, ElfSection>();
  const ordered = patched.sections.filter((s) => plan.sections.has(s));
  for (const s of ordered) {
    const c = copySection(s);
    copies.set(s, c);
    out.push(c);
  }
  const strtab: ElfSection = {
    ...copySection({
      ...patched.sections[0]!,
      name: '.strtab',
      type: 3,
      flags: 0,
      size: 0,
      addralign: 1,
      entsize: 0,
      data: new Uint8Array(0),
    }),
  };
  const symtab: ElfSection = {
    ...copySection({
      ...patched.sections[0]!,
      name: '.symtab',
      type: 2,
      flags: 0,
      size: 0,
      addralign: 8,
      entsize: 24,
      data: new Uint8Array(0),
    }),
    link: strtab,
    symbols: [],
  };
  const locals: ElfSymbol[] = [];
  const globals: ElfSymbol[] = [];
  const sectionSyms = new Map<ElfSection, ElfSymbol>();
  const definedSyms = new Map<ElfSymbol, ElfSymbol>();
  const externalSyms = new Map<string, ElfSymbol>();
  const fileSym = patched.symbols.find((s) => s.type === STT.FILE);
  if (fileSym) locals.push({ ...fileSym, section: null });

  const sectionSymbol = (orig: ElfSection): ElfSymbol => {
    const copy = copies.get(orig)!;
    let sym = sectionSyms.get(copy);
    if (!sym) {
      sym = {
        name: '',
        value: 0n,
        size: 0,
        bind: STB.LOCAL,
        type: STT.SECTION,
        visibility: 0,
        other: 0,
        section: copy,
        shndx: 0,
      };
      sectionSyms.set(copy, sym);
      locals.push(sym);
    }
    return sym;
  };
  const carried = new Set(plan.functions);
  // defined symbols of carried sections
  for (const s of patched.symbols) {
    if (!s.section || !copies.has(s.section) || s.type === STT.SECTION || s.type === STT.FILE) continue;
    // replaced functions become global so klp_func.new_func can name them; new helpers stay private
    const makeGlobal =
      opts.exportFunctions !== false &&
      carried.has(s) &&
      s.type === STT.FUNC &&
      s.bind === STB.LOCAL &&
      !pCanon(s).startsWith('new:') &&
      !/\.cold(\.\d+)?$/.test(s.name);
    const copy: ElfSymbol = {
      ...s,
      section: copies.get(s.section)!,
      shndx: 0,
      ...(makeGlobal ? { bind: STB.GLOBAL, visibility: 0, other: 0 } : {}),
    };
    definedSyms.set(s, copy);
    (copy.bind === STB.LOCAL ? locals : globals).push(copy);
  }
  const external = (sym: ElfSymbol): ElfSymbol => {
    const ref = plan.externals.get(sym) ?? {
      name: sym.name,
      local: false,
      definedHere: false,
      type: 'other' as const,
    };
    const name = opts.externalName ? opts.externalName(ref) : ref.name;
    let e = externalSyms.get(name);
    if (!e) {
      e = {
        name,
        value: 0n,
        size: 0,
        bind: STB.GLOBAL,
        type: STT.NOTYPE,
        visibility: 0,
        other: 0,
        section: null,
        shndx: SHN.UNDEF,
      };
      externalSyms.set(name, e);
      globals.push(e);
    }
    return e;
  };
  const mapRelocation = (rel: ElfRelocation): ElfRelocation => {
    const sym = rel.symbol;
    if (!sym) return { ...rel };
    if (sym.section === null) return { ...rel, symbol: external(sym) };
    if (sym.type === STT.SECTION) {
      if (copies.has(sym.section)) return { ...rel, symbol: sectionSymbol(sym.section) };
      const t = resolveTarget(rel, pMap, pCanon);
      if (!t.symbol)
        throw new Error(`internal: reference to ${sym.section.name} was neither carried nor named`);
      const addend = t.symbolAddend ?? 0n;
      const d = definedSyms.get(t.symbol);
      return { ...rel, symbol: d ?? external(t.symbol), addend };
    }
    const d = definedSyms.get(sym);
    return { ...rel, symbol: d ?? external(sym) };
  };
  const relaFor = (target: ElfSection, rels: ElfRelocation[]): ElfSection => ({
    ...copySection({
      ...target,
      name: `.rela${target.name}`,
      type: 4,
      flags: SHF.INFO_LINK,
      size: rels.length * 24,
      addralign: 8,
      entsize: 24,
      data: new Uint8Array(0),
    }),
    link: symtab,
    infoSection: target,
    relocations: rels,
  });
  const relas: ElfSection[] = [];
  for (const s of ordered) {
    const rels = relocationsIn(patched, s).map(mapRelocation);
    if (rels.length) relas.push(relaFor(copies.get(s)!, rels));
  }
  // special tables: kept entries, packed
  const orcIp = patched.section('.orc_unwind_ip');
  const orc = patched.section('.orc_unwind');
  for (const [table, kept] of plan.tables) {
    const size = SPECIAL_TABLES[table.name]!;
    const data = new Uint8Array(kept.length * size);
    const rels: ElfRelocation[] = [];
    const all = relocationsIn(patched, table);
    kept.forEach((at, i) => {
      data.set(table.data.subarray(at, at + size), i * size);
      for (const r of all) {
        const off = Number(r.offset);
        if (off >= at && off < at + size)
          rels.push({ ...mapRelocation(r), offset: BigInt(i * size + (off - at)) });
      }
    });
    const c: ElfSection = { ...copySection(table), size: data.length, data };
    out.push(c);
    if (rels.length) relas.push(relaFor(c, rels));
    if (table === orcIp && orc) {
      const od = new Uint8Array(kept.length * ORC_ENTRY);
      kept.forEach((at, i) => {
        const idx = at / size;
        od.set(orc.data.subarray(idx * ORC_ENTRY, (idx + 1) * ORC_ENTRY), i * ORC_ENTRY);
      });
      out.push({ ...copySection(orc), size: od.length, data: od });
    }
  }
  for (const s of out)
    if (!sectionSyms.has(s)) {
      const orig = [...copies].find(([, c]) => c === s)?.[0];
      if (orig) sectionSymbol(orig);
    }
  symtab.symbols = [...locals, ...globals];
  symtab.info = locals.length + 1;
  // no executable stack, like every kernel object (the linker warns otherwise)
  const stack = patched.section('.note.GNU-stack');
  if (stack) out.push(copySection(stack));
  // the writer adds .shstrtab and fills both string tables from the names in use
  return new ElfObjectClass({ ...patched.header }, [...out, ...relas, symtab, strtab], [], undefined);
}

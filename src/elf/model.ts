/*
 * The in-memory model of an ELF64 x86-64 object.
 *
 * Sections and symbols reference each other by identity, never by raw index: a symbol points at its
 * ElfSection, a relocation at its ElfSymbol, a relocation section at the section it applies to, a group
 * at its member sections. Indices exist only in the file; the reader resolves them into references and
 * the writer (writer.ts) numbers everything again. So removing a section from `sections` or a symbol
 * from a table's `symbols` is all it takes: nothing needs manual renumbering.
 *
 * Index 0 entries (the null section, the null symbol) are not in the arrays; `sectionIndex()` and
 * `symbolIndex()` give the file index (1-based) an entry had (or will have) in this layout.
 *
 * Numbers: file offsets, sizes, alignments, flags are JS numbers (checked safe on read); addresses,
 * symbol values, relocation offsets and addends are bigint (vmlinux addresses exceed 2^53).
 */
import { SHN, SHT, STB, STT, STV } from './constants.js';

export interface ElfHeader {
  /** ET_REL, ET_EXEC, ET_DYN ... */
  type: number;
  machine: number;
  version: number;
  osabi: number;
  abiversion: number;
  entry: bigint;
  flags: number;
  /** e_phoff, e_shoff as found in the file (informational; the writer lays out anew) */
  phoff: number;
  shoff: number;
}

export interface ElfProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: bigint;
  /** sh_offset in the file it was read from; 0 for a new section. The writer assigns a new one. */
  offset: number;
  /** sh_size. For sections with contents the writer uses the encoded contents' length instead. */
  size: number;
  /** sh_link as a reference (symtab → strtab, rela → symtab, group → symtab, symtab_shndx → symtab ...) */
  link: ElfSection | null;
  /**
   * sh_info when it is a plain number (a symtab's first global index is recomputed by the writer).
   * For RELA/REL sections and SHF_INFO_LINK sections, see `infoSection`.
   */
  info: number;
  /** sh_info as a reference: the section a RELA/REL section applies to (or SHF_INFO_LINK's target) */
  infoSection: ElfSection | null;
  addralign: number;
  entsize: number;
  /** raw contents (empty for NOBITS). Typed views below take precedence when the writer encodes. */
  data: Uint8Array;
  /** SYMTAB/DYNSYM: the symbols, without the null symbol 0 */
  symbols?: ElfSymbol[];
  /** RELA/REL: the relocations */
  relocations?: ElfRelocation[];
  /** GROUP: flags and members; the signature symbol is sh_info */
  group?: ElfGroup;
  /** NOTE: the parsed notes (read-only view; the writer keeps `data`) */
  notes?: ElfNote[];
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  size: number;
  /** STB_* */
  bind: number;
  /** STT_* */
  type: number;
  /** STV_* (low 2 bits of st_other) */
  visibility: number;
  /** st_other as read (visibility plus any other bits) */
  other: number;
  /** the section the symbol is defined in, or null for SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH ... */
  section: ElfSection | null;
  /**
   * When `section` is null: the special index (SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH or another
   * reserved value). When `section` is set: the index it had when read (the writer recomputes it).
   */
  shndx: number;
}

export interface ElfRelocation {
  /** r_offset: offset in the target section (ET_REL) or a virtual address (ET_EXEC/ET_DYN) */
  offset: bigint;
  /** R_X86_64_* */
  type: number;
  /** the symbol in the linked symbol table, or null for symbol index 0 */
  symbol: ElfSymbol | null;
  /** r_addend (0n for REL) */
  addend: bigint;
}

export interface ElfGroup {
  /** GRP_COMDAT etc. */
  flags: number;
  members: ElfSection[];
  /** the signature symbol (sh_info of the group section) */
  signature: ElfSymbol | null;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
  /** file offset of the note header */
  offset: number;
}

export class ElfObject {
  header: ElfHeader;
  programHeaders: ElfProgramHeader[];
  /** all sections except the null section 0, in file order */
  sections: ElfSection[];
  /** the section-name string table (e_shstrndx); the writer creates one if this is null */
  shstrtab: ElfSection | null = null;
  /** where the bytes came from, for diagnostics */
  readonly file: string | undefined;

  constructor(header: ElfHeader, sections: ElfSection[], programHeaders: ElfProgramHeader[], file?: string) {
    this.header = header;
    this.sections = sections;
    this.programHeaders = programHeaders;
    this.file = file;
  }

  private indexCache = new Map<ElfSection, number>();

  /** File index (1-based) of a section in the current layout; throws if it is not part of this object. */
  sectionIndex(section: ElfSection): number {
    const cached = this.indexCache.get(section);
    if (cached !== undefined && this.sections[cached - 1] === section) return cached;
    // `sections` changed since the cache was built: rebuild it (O(n) once per change, O(1) per lookup)
    this.indexCache = new Map();
    this.sections.forEach((s, i) => {
      this.indexCache.set(s, i + 1);
    });
    const i = this.indexCache.get(section);
    if (i === undefined) throw new Error(`section ${section.name} is not part of this object`);
    return i;
  }

  /** The section with that file index in the current layout (1-based), or undefined. */
  sectionAt(index: number): ElfSection | undefined {
    return index >= 1 ? this.sections[index - 1] : undefined;
  }

  /** Insert a section after `after` (default: at the end, before .symtab/.strtab/.shstrtab if present). */
  addSection(section: ElfSection, after?: ElfSection): ElfSection {
    let at: number;
    if (after) at = this.sectionIndex(after);
    else {
      // before the trailing symbol and string tables, as assemblers lay them out
      const tail = (s: ElfSection) =>
        s.type === SHT.SYMTAB || s.type === SHT.STRTAB || s.type === SHT.SYMTAB_SHNDX;
      at = this.sections.length;
      while (at > 0 && tail(this.sections[at - 1]!)) at--;
    }
    this.sections.splice(at, 0, section);
    return section;
  }

  /** Add a symbol to .symtab (the writer moves locals before globals). */
  addSymbol(symbol: ElfSymbol): ElfSymbol {
    const t = this.symtab;
    if (!t?.symbols) throw new Error('the object has no symbol table');
    t.symbols.push(symbol);
    return symbol;
  }

  /** First section with that name. */
  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The static symbol table (.symtab), if any. */
  get symtab(): ElfSection | undefined {
    return this.sections.find((s) => s.type === SHT.SYMTAB);
  }

  /** Symbols of .symtab (without the null symbol), or [] when there is none. */
  get symbols(): ElfSymbol[] {
    return this.symtab?.symbols ?? [];
  }

  /** Relocation sections that apply to `target`. */
  relocationsFor(target: ElfSection): ElfSection[] {
    return this.sections.filter((s) => s.relocations !== undefined && s.infoSection === target);
  }

  /** File index (1-based) of a symbol within its table; throws if it is not in `table`. */
  symbolIndex(symbol: ElfSymbol, table: ElfSection | undefined = this.symtab): number {
    const i = table?.symbols?.indexOf(symbol) ?? -1;
    if (i < 0) throw new Error(`symbol ${symbol.name} is not in ${table?.name ?? 'the symbol table'}`);
    return i + 1;
  }

  /**
   * Remove sections, and everything that only makes sense with them: relocation sections applying to
   * them, their section symbols, their membership in groups. Symbols defined in a removed section
   * become undefined (SHN_UNDEF, value 0) unless `dropSymbols` is set, in which case they are removed.
   * Relocations elsewhere that referenced a removed symbol (typically a removed section's STT_SECTION
   * symbol, from __mcount_loc, .orc_unwind_ip, __jump_table ...) are removed too and returned, so the
   * caller can see which entries of those special sections no longer point anywhere.
   */
  removeSections(
    remove: Iterable<ElfSection>,
    opts: { dropSymbols?: boolean } = {},
  ): { droppedRelocations: { section: ElfSection; relocation: ElfRelocation }[] } {
    const gone = new Set(remove);
    for (const s of this.sections) if (s.infoSection && gone.has(s.infoSection) && s.relocations) gone.add(s);
    this.sections = this.sections.filter((s) => !gone.has(s));
    const droppedSymbols = new Set<ElfSymbol>();
    for (const s of this.sections) {
      if (s.group) s.group.members = s.group.members.filter((m) => !gone.has(m));
      if (s.link && gone.has(s.link)) s.link = null;
      if (s.infoSection && gone.has(s.infoSection)) s.infoSection = null;
      if (!s.symbols) continue;
      s.symbols = s.symbols.filter((sym) => {
        if (!sym.section || !gone.has(sym.section)) return true;
        if (sym.type === STT.SECTION || opts.dropSymbols) {
          droppedSymbols.add(sym);
          return false;
        }
        sym.section = null;
        sym.shndx = 0;
        sym.value = 0n;
        sym.size = 0;
        return true;
      });
    }
    const droppedRelocations: { section: ElfSection; relocation: ElfRelocation }[] = [];
    if (droppedSymbols.size > 0)
      for (const s of this.sections) {
        if (!s.relocations) continue;
        s.relocations = s.relocations.filter((r) => {
          if (!r.symbol || !droppedSymbols.has(r.symbol)) return true;
          droppedRelocations.push({ section: s, relocation: r });
          return false;
        });
        if (s.group?.signature && droppedSymbols.has(s.group.signature)) s.group.signature = null;
      }
    for (const s of this.sections)
      if (s.group?.signature && droppedSymbols.has(s.group.signature)) s.group.signature = null;
    return { droppedRelocations };
  }
}

/** A new section with defaults for everything not given (PROGBITS, no flags, align 1, empty). */
export function createSection(init: Partial<ElfSection> & { name: string }): ElfSection {
  return {
    type: SHT.PROGBITS,
    flags: 0,
    addr: 0n,
    offset: 0,
    size: init.data?.length ?? 0,
    link: null,
    info: 0,
    infoSection: null,
    addralign: 1,
    entsize: 0,
    data: new Uint8Array(0),
    ...init,
  };
}

/** A new symbol with defaults for everything not given (LOCAL NOTYPE DEFAULT, undefined). */
export function createSymbol(init: Partial<ElfSymbol> & { name: string }): ElfSymbol {
  return {
    value: 0n,
    size: 0,
    bind: STB.LOCAL,
    type: STT.NOTYPE,
    visibility: STV.DEFAULT,
    other: init.visibility ?? STV.DEFAULT,
    section: null,
    shndx: SHN.UNDEF,
    ...init,
  };
}

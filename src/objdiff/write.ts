/*
 * The diff object: the carried sections, the kept table entries, their relocations and the symbols they
 * need, as a new relocatable object (the input objects are left as they are).
 *
 * Kept apart from comparing so that comparing never writes anything: only a result without refusals
 * becomes a diff object. It reads the diff records as the selection and the module builder left them:
 * which functions are carried, and the name each reference to the running kernel gets (its
 * `moduleName`, or its name in the running kernel).
 */
import { writeFile } from 'node:fs/promises';
import { fail } from '../diagnostic.js';
import { RELA_SIZE, SHF, SHN, SHT, STB, STT, STV, SYM_SIZE } from '../elf/constants.js';
import {
  createSection,
  ElfObject,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from '../elf/model.js';
import { writeElf } from '../elf/writer.js';
import { relocationsIn, resolveTarget } from './compare.js';
import type { ObjectDiff } from './objdiff.js';
import { prefixSet } from './prefix.js';

export interface DiffObjectOptions {
  /** carried functions that must be reachable from other objects (klp_func.new_func): made global */
  exportFunctions?: boolean;
}

/**
 * A SHF_LINK_ORDER table (6.12's `__patchable_function_entries`, one per function with
 * -ffunction-sections) must name the text it orders in sh_link, else ld refuses to mix it with the
 * ordered ones of klp.o. packTable gives each function its own section, so each keeps its link.
 */
function linkOrdered(c: ElfSection, rels: ElfRelocation[]): void {
  if (!(c.flags & SHF.LINK_ORDER)) return;
  const texts = new Set(rels.map((r) => r.symbol?.section).filter((x): x is ElfSection => !!x));
  if (texts.size === 1) c.link = [...texts][0]!;
  else c.flags &= ~SHF.LINK_ORDER;
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

/** An empty section of the output (no flags, no data), made as the ELF model makes every new section. */
function emptySection(name: string, type: number, addralign: number, entsize: number): ElfSection {
  return createSection({ name, type, addralign, entsize });
}

function newSymbol(fields: Pick<ElfSymbol, 'name' | 'bind' | 'type' | 'section' | 'shndx'>): ElfSymbol {
  return { value: 0n, size: 0, visibility: STV.DEFAULT, other: 0, ...fields };
}

/** The output object being assembled: copies of carried sections and the symbols naming things in them. */
class DiffObjectBuilder {
  readonly out: ElfSection[] = [];
  readonly relas: ElfSection[] = [];
  readonly copies = new Map<ElfSection, ElfSection>();
  readonly locals: ElfSymbol[] = [];
  readonly globals: ElfSymbol[] = [];
  readonly strtab = emptySection('.strtab', SHT.STRTAB, 1, 0);
  readonly symtab: ElfSection = {
    ...emptySection('.symtab', SHT.SYMTAB, 8, SYM_SIZE),
    link: this.strtab,
    symbols: [],
  };
  private readonly sectionSyms = new Map<ElfSection, ElfSymbol>();
  private readonly definedSyms = new Map<ElfSymbol, ElfSymbol>();
  private readonly externalSyms = new Map<string, ElfSymbol>();

  constructor(
    readonly diff: ObjectDiff,
    readonly opts: DiffObjectOptions,
  ) {}

  copy(s: ElfSection): ElfSection {
    const c = copySection(s);
    this.copies.set(s, c);
    this.out.push(c);
    return c;
  }

  sectionSymbol(orig: ElfSection): ElfSymbol {
    const copy = this.copies.get(orig)!;
    let sym = this.sectionSyms.get(copy);
    if (!sym) {
      sym = newSymbol({ name: '', bind: STB.LOCAL, type: STT.SECTION, section: copy, shndx: 0 });
      this.sectionSyms.set(copy, sym);
      this.locals.push(sym);
    }
    return sym;
  }

  /** Copy the defined symbols of carried sections; replaced functions become global (klp_func.new_func). */
  defineSymbols(): void {
    // parts (.cold, __pfx_ prefixes) are carried with their function but stay private to the diff object
    const carried = new Set(this.diff.functions.filter((f) => f.included && !f.parent).map((f) => f.symbol));
    const prefixes = prefixSet(this.diff.patched.symbols);
    for (const s of this.diff.patched.symbols) {
      if (!s.section || !this.copies.has(s.section) || s.type === STT.SECTION || s.type === STT.FILE)
        continue;
      // new helpers and .cold parts stay private to the diff object
      const makeGlobal =
        this.opts.exportFunctions !== false &&
        carried.has(s) &&
        s.type === STT.FUNC &&
        s.bind === STB.LOCAL &&
        !this.diff.pCanon(s).startsWith('new:') &&
        !/\.cold(\.\d+)?$/.test(s.name);
      // nothing calls a prefix by name: it stays local even where objtool gave it its function's binding
      const makeLocal = prefixes.has(s);
      const copy: ElfSymbol = {
        ...s,
        section: this.copies.get(s.section)!,
        shndx: 0,
        ...(makeGlobal ? { bind: STB.GLOBAL, visibility: STV.DEFAULT, other: 0 } : {}),
        ...(makeLocal ? { bind: STB.LOCAL } : {}),
      };
      this.definedSyms.set(s, copy);
      (copy.bind === STB.LOCAL ? this.locals : this.globals).push(copy);
    }
  }

  /**
   * The carried descriptors of each descriptor table (descriptors.ts), packed one after another into the
   * diff object's own copy of the table, each keeping its symbol (at its new offset) so that the code
   * and the jump-table entries using it point at the copy (so it runs before their relocations are mapped).
   */
  packDescriptors(): void {
    for (const [table, descriptors] of this.diff.selection.descriptors) {
      const size = descriptors.reduce((n, d) => n + d.size, 0);
      const data = new Uint8Array(size);
      const c: ElfSection = { ...copySection(table), size, data };
      const rels: ElfRelocation[] = [];
      let to = 0;
      for (const d of descriptors) {
        const at = Number(d.value);
        data.set(table.data.subarray(at, at + d.size), to);
        const copy: ElfSymbol = { ...d, section: c, shndx: 0, value: BigInt(to) };
        this.definedSyms.set(d, copy);
        (copy.bind === STB.LOCAL ? this.locals : this.globals).push(copy);
        for (const r of relocationsIn(this.diff.patched, table, at, at + d.size))
          rels.push({ ...r, offset: r.offset - BigInt(at) + BigInt(to) });
        to += d.size;
      }
      this.out.push(c);
      this.relaFor(
        c,
        rels.map((r) => this.mapRelocation(r)),
      );
    }
  }

  /** The undefined symbol standing for what the running kernel provides, by the name the module gives it. */
  external(sym: ElfSymbol): ElfSymbol {
    const ref = this.diff.references.get(sym);
    const name = ref?.moduleName ?? ref?.name ?? sym.name;
    let e = this.externalSyms.get(name);
    if (!e) {
      e = newSymbol({ name, bind: STB.GLOBAL, type: STT.NOTYPE, section: null, shndx: SHN.UNDEF });
      this.externalSyms.set(name, e);
      this.globals.push(e);
    }
    return e;
  }

  mapRelocation(rel: ElfRelocation): ElfRelocation {
    const sym = rel.symbol;
    if (!sym) return { ...rel };
    if (sym.section === null) return { ...rel, symbol: this.external(sym) };
    if (sym.type === STT.SECTION) {
      if (this.copies.has(sym.section)) return { ...rel, symbol: this.sectionSymbol(sym.section) };
      const t = resolveTarget(rel, this.diff.map, this.diff.pCanon);
      if (!t.symbol)
        throw new Error(`internal: reference to ${sym.section.name} was neither carried nor named`);
      const d = this.definedSyms.get(t.symbol);
      return { ...rel, symbol: d ?? this.external(t.symbol), addend: t.symbolAddend ?? 0n };
    }
    return { ...rel, symbol: this.definedSyms.get(sym) ?? this.external(sym) };
  }

  relaFor(target: ElfSection, rels: ElfRelocation[]): void {
    if (!rels.length) return;
    this.relas.push({
      ...copySection({
        ...target,
        name: `.rela${target.name}`,
        type: SHT.RELA,
        flags: SHF.INFO_LINK,
        size: rels.length * RELA_SIZE,
        addralign: 8,
        entsize: RELA_SIZE,
        data: new Uint8Array(0),
      }),
      link: this.symtab,
      infoSection: target,
      relocations: rels,
    });
  }

  /** Kept entries of a special table, packed, with their relocations (and `.orc_unwind`'s parallel entries). */
  packTable(table: ElfSection, kept: number[]): void {
    if (table.flags & SHF.LINK_ORDER) {
      // one section per function it orders (as the compiler emits them), each linked to that text
      const size = this.diff.tables[table.name]!;
      const all = relocationsIn(this.diff.patched, table);
      const groups = new Map<ElfSection | undefined, number[]>();
      for (const at of kept) {
        const r = all.find((x) => Number(x.offset) >= at && Number(x.offset) < at + size);
        const text = r ? (this.mapRelocation(r).symbol?.section ?? undefined) : undefined;
        groups.set(text, [...(groups.get(text) ?? []), at]);
      }
      if (groups.size > 1) {
        for (const g of groups.values()) this.packEntries(table, g);
        return;
      }
    }
    this.packEntries(table, kept);
  }

  private packEntries(table: ElfSection, kept: number[]): void {
    const patched = this.diff.patched;
    const size = this.diff.tables[table.name]!;
    const orcSize = this.diff.tables['.orc_unwind']!;
    const data = new Uint8Array(kept.length * size);
    const rels: ElfRelocation[] = [];
    const all = relocationsIn(patched, table);
    kept.forEach((at, i) => {
      data.set(table.data.subarray(at, at + size), i * size);
      for (const r of all) {
        const off = Number(r.offset);
        if (off >= at && off < at + size)
          rels.push({ ...this.mapRelocation(r), offset: BigInt(i * size + (off - at)) });
      }
    });
    const c: ElfSection = { ...copySection(table), size: data.length, data };
    linkOrdered(c, rels);
    this.out.push(c);
    this.relaFor(c, rels);
    const orc = patched.section('.orc_unwind');
    if (table === patched.section('.orc_unwind_ip') && orc) {
      const od = new Uint8Array(kept.length * orcSize);
      kept.forEach((at, i) => {
        const idx = at / size;
        od.set(orc.data.subarray(idx * orcSize, (idx + 1) * orcSize), i * orcSize);
      });
      this.out.push({ ...copySection(orc), size: od.length, data: od });
    }
  }

  finish(): ElfObject {
    const patched = this.diff.patched;
    for (const [orig] of this.copies) this.sectionSymbol(orig);
    this.symtab.symbols = [...this.locals, ...this.globals];
    this.symtab.info = this.locals.length + 1;
    // no executable stack, like every kernel object (the linker warns otherwise)
    const stack = patched.section('.note.GNU-stack');
    if (stack) this.out.push(copySection(stack));
    // the writer adds .shstrtab and fills both string tables from the names in use
    return new ElfObject(
      { ...patched.header },
      [...this.out, ...this.relas, this.symtab, this.strtab],
      [],
      undefined,
    );
  }
}

/** The diff object as a model; throws OBJDIFF-REFUSED when the comparison refused anything. */
export function diffObjectOf(diff: ObjectDiff, opts: DiffObjectOptions = {}): ElfObject {
  if (diff.refusals.length)
    fail(
      'OBJDIFF-REFUSED',
      `${diff.patchedPath}: ${diff.refusals.length} change(s) cannot be carried by a livepatch`,
      {
        detail: diff.refusals.map((r) => `${r.code}: ${r.message}`),
        hint: 'fix the refusals listed above; no diff object is written while any remain',
      },
    );
  const b = new DiffObjectBuilder(diff, opts);
  const file = diff.patched.symbols.find((s) => s.type === STT.FILE);
  if (file) b.locals.push({ ...file, section: null });
  const ordered = diff.patched.sections.filter((s) => diff.selection.sections.has(s));
  for (const s of ordered) b.copy(s);
  b.defineSymbols();
  b.packDescriptors();
  for (const s of ordered)
    b.relaFor(
      b.copies.get(s)!,
      relocationsIn(diff.patched, s).map((r) => b.mapRelocation(r)),
    );
  for (const [table, kept] of diff.selection.tables) b.packTable(table, kept);
  return b.finish();
}

export async function writeDiffObject(
  diff: ObjectDiff,
  path: string,
  opts: DiffObjectOptions = {},
): Promise<ElfObject> {
  const obj = diffObjectOf(diff, opts);
  await writeFile(path, writeElf(obj));
  return obj;
}

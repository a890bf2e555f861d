/*
 * Writer: an ElfObject (ET_REL) → bytes, laid out again from the model.
 *
 * The model holds references, so the writer is where every index is decided, and where every ELF
 * invariant is re-established after a change:
 *  - sections are numbered in `obj.sections` order (null section 0 first);
 *  - each symbol table is reordered locals-first (in place, stable), and its sh_info is the first
 *    non-local index;
 *  - string tables (.strtab, .shstrtab, any table a symtab links to) are rebuilt from the names in use,
 *    deduplicated, with tail merging (".text" shares the bytes of ".rela.text");
 *  - relocation sections get sh_link = their symbol table and sh_info = their target section;
 *    group sections get their member indices and signature symbol renumbered;
 *  - with 0xff00 sections or more, extended numbering is used: e_shnum = 0 and section 0's sh_size holds
 *    the count, e_shstrndx = SHN_XINDEX with the index in section 0's sh_link, and symbols in high
 *    sections get st_shndx = SHN_XINDEX with the real index in .symtab_shndx (created if missing).
 * A reference to something not in the object (a symbol whose section was dropped, a relocation against a
 * symbol no longer in the table) is an ELF-WRITE-* error, never a silently wrong index.
 */
import { fail } from '../diagnostic.js';
import {
  EHDR_SIZE,
  ELF_MAGIC,
  ELFCLASS64,
  ELFDATA2LSB,
  ET,
  EV_CURRENT,
  REL_SIZE,
  RELA_SIZE,
  SHDR_SIZE,
  SHN,
  SHT,
  STB,
  SYM_SIZE,
} from './constants.js';
import { createSection, type ElfObject, type ElfSection, type ElfSymbol } from './model.js';
import { buildStringTable, keepOriginalStrings, type StringTable } from './string-table.js';

function writeFail(code: string, message: string, section?: string, symbol?: string): never {
  const location: { section?: string; symbol?: string } = {};
  if (section !== undefined) location.section = section;
  if (symbol !== undefined) location.symbol = symbol;
  fail(code, message, {
    location,
    why: 'the object model refers to something that is not part of the object being written',
    hint: 'this is a bug in the stage that edited the object: keep references consistent (use ElfObject.removeSections)',
  });
}

const align = (n: number, a: number) => (a > 1 ? Math.ceil(n / a) * a : n);

/** The indices the file will use: sections in `obj.sections` order, symbols in table order. */
class Numbering {
  readonly index = new Map<ElfSection, number>();
  private readonly symbols = new Map<ElfSection, Map<ElfSymbol, number>>();
  readonly shnum: number;

  constructor(obj: ElfObject, symtabs: ElfSection[]) {
    obj.sections.forEach((s, i) => {
      this.index.set(s, i + 1);
    });
    this.shnum = obj.sections.length + 1;
    for (const t of symtabs) {
      const m = new Map<ElfSymbol, number>();
      t.symbols!.forEach((sym, i) => {
        m.set(sym, i + 1);
      });
      this.symbols.set(t, m);
    }
  }

  /** The index of a section referenced as `what` by `owner` (0 for none). */
  section(s: ElfSection | null, what: string, owner: ElfSection): number {
    if (s === null) return 0;
    const i = this.index.get(s);
    if (i === undefined)
      writeFail(
        'ELF-WRITE-DANGLING-SECTION',
        `${what} of ${owner.name} refers to section ${s.name}, which is not in the object`,
        owner.name,
      );
    return i;
  }

  /** The index of a symbol in `table`, referenced as `what` by `owner` (0 for none). */
  symbol(table: ElfSection | null, sym: ElfSymbol | null, owner: ElfSection, what: string): number {
    if (sym === null) return 0;
    const i = (table ? this.symbols.get(table) : undefined)?.get(sym);
    if (i === undefined)
      writeFail(
        'ELF-WRITE-DANGLING-SYMBOL',
        `${what} in ${owner.name} refers to symbol ${sym.name}, which is not in ${table?.name ?? 'its (missing) symbol table'}`,
        owner.name,
        sym.name,
      );
    return i;
  }
}

/** Only relocatable objects are written; the section-name table is made when missing. */
function prepare(obj: ElfObject): ElfSection {
  if (obj.header.type !== ET.REL)
    fail(
      'ELF-WRITE-UNSUPPORTED',
      `only relocatable objects (ET_REL) can be written, this is type ${obj.header.type}`,
      {
        hint: 'the writer rewrites .o/.ko files; executables are read-only here',
      },
    );
  if (!obj.shstrtab || !obj.sections.includes(obj.shstrtab)) {
    obj.shstrtab = createSection({ name: '.shstrtab', type: SHT.STRTAB });
    obj.sections.push(obj.shstrtab);
  }
  return obj.shstrtab;
}

/** Locals first in every symbol table (in place, stable); returns the symbol tables. */
function localsFirst(obj: ElfObject): ElfSection[] {
  const symtabs = obj.sections.filter((s) => s.symbols !== undefined);
  for (const t of symtabs) {
    const syms = t.symbols!;
    const locals = syms.filter((s) => s.bind === STB.LOCAL);
    if (locals.length !== syms.length) t.symbols = [...locals, ...syms.filter((s) => s.bind !== STB.LOCAL)];
  }
  return symtabs;
}

/** Extended numbering: a .symtab_shndx for every symbol table, decided before numbering. */
function addExtendedIndexTables(obj: ElfObject, symtabs: ElfSection[]): boolean {
  const extended = obj.sections.length + 1 >= SHN.LORESERVE;
  if (!extended) return false;
  for (const t of symtabs) {
    if (obj.sections.some((s) => s.type === SHT.SYMTAB_SHNDX && s.link === t)) continue;
    const x = createSection({
      name: '.symtab_shndx',
      type: SHT.SYMTAB_SHNDX,
      link: t,
      addralign: 4,
      entsize: 4,
    });
    obj.sections.splice(obj.sections.indexOf(t) + 1, 0, x);
  }
  return true;
}

/** Every string table with the names it must hold: fresh and tail-merged, or the original when it fits. */
function stringTables(
  obj: ElfObject,
  shstrtab: ElfSection,
  symtabs: ElfSection[],
): Map<ElfSection, StringTable> {
  const names = new Map<ElfSection, string[]>();
  const want = (t: ElfSection, list: Iterable<string>) => {
    const a = names.get(t) ?? [];
    names.set(t, a);
    for (const n of list) a.push(n);
  };
  want(
    shstrtab,
    obj.sections.map((s) => s.name),
  );
  for (const t of symtabs) {
    if (!t.link || t.link.type !== SHT.STRTAB)
      writeFail('ELF-WRITE-NO-STRTAB', `symbol table ${t.name} has no string table link`, t.name);
    want(
      t.link,
      t.symbols!.map((s) => s.name),
    );
  }
  const tables = new Map<ElfSection, StringTable>();
  for (const [t, list] of names) {
    const fresh = buildStringTable(list);
    tables.set(t, keepOriginalStrings(t.data, fresh) ?? fresh);
  }
  return tables;
}

/** A symbol table's entries; sh_info is its first non-local index. */
function encodeSymbols(
  s: ElfSection,
  n: Numbering,
  names: Map<string, number>,
): { data: Buffer; info: number } {
  const syms = s.symbols!;
  const b = Buffer.alloc((syms.length + 1) * SYM_SIZE);
  let firstGlobal = syms.length + 1;
  syms.forEach((sym, k) => {
    const p = (k + 1) * SYM_SIZE;
    if (sym.bind !== STB.LOCAL && firstGlobal > k + 1) firstGlobal = k + 1;
    let shndx: number;
    if (sym.section) {
      shndx =
        n.index.get(sym.section) ??
        writeFail(
          'ELF-WRITE-DANGLING-SECTION',
          `symbol ${sym.name} is defined in section ${sym.section.name}, which is not in the object`,
          s.name,
          sym.name,
        );
    } else shndx = sym.shndx;
    b.writeUInt32LE(names.get(sym.name)!, p);
    b[p + 4] = ((sym.bind & 0xf) << 4) | (sym.type & 0xf);
    b[p + 5] = (sym.other & ~3) | (sym.visibility & 3);
    b.writeUInt16LE(sym.section && shndx >= SHN.LORESERVE ? SHN.XINDEX : shndx & 0xffff, p + 6);
    b.writeBigUInt64LE(BigInt.asUintN(64, sym.value), p + 8);
    b.writeBigUInt64LE(BigInt(sym.size), p + 16);
  });
  return { data: b, info: firstGlobal };
}

/** A .symtab_shndx: the real section index of every symbol in a section at or past SHN_LORESERVE. */
function encodeExtendedIndices(s: ElfSection, n: Numbering): Buffer {
  const syms = s.link?.symbols ?? [];
  const b = Buffer.alloc((syms.length + 1) * 4);
  syms.forEach((sym, k) => {
    const i = sym.section ? (n.index.get(sym.section) ?? 0) : 0;
    if (i >= SHN.LORESERVE) b.writeUInt32LE(i, (k + 1) * 4);
  });
  return b;
}

function encodeRelocations(s: ElfSection, n: Numbering): Buffer {
  const rela = s.type === SHT.RELA;
  const esz = rela ? RELA_SIZE : REL_SIZE;
  const relocations = s.relocations!;
  const b = Buffer.alloc(relocations.length * esz);
  relocations.forEach((r, k) => {
    const p = k * esz;
    const si = n.symbol(s.link, r.symbol, s, `relocation ${k}`);
    b.writeBigUInt64LE(BigInt.asUintN(64, r.offset), p);
    b.writeBigUInt64LE((BigInt(si) << 32n) | BigInt(r.type >>> 0), p + 8);
    if (rela) b.writeBigInt64LE(BigInt.asIntN(64, r.addend), p + 16);
  });
  return b;
}

function encodeGroup(s: ElfSection, n: Numbering): Buffer {
  const group = s.group!;
  const b = Buffer.alloc(4 + group.members.length * 4);
  b.writeUInt32LE(group.flags, 0);
  group.members.forEach((m, k) => {
    b.writeUInt32LE(n.section(m, `group member ${k}`, s), 4 + k * 4);
  });
  return b;
}

/** Each section's bytes, and the sh_info values the numbering decides. */
function encodeContents(obj: ElfObject, n: Numbering, strtabs: Map<ElfSection, StringTable>) {
  const contents = new Map<ElfSection, Uint8Array>();
  const infoOf = new Map<ElfSection, number>();
  for (const s of obj.sections) {
    const st = strtabs.get(s);
    if (st) contents.set(s, st.data);
    else if (s.symbols) {
      const { data, info } = encodeSymbols(s, n, strtabs.get(s.link!)!.offsets);
      infoOf.set(s, info);
      contents.set(s, data);
    } else if (s.type === SHT.SYMTAB_SHNDX) contents.set(s, encodeExtendedIndices(s, n));
    else if (s.relocations) {
      contents.set(s, encodeRelocations(s, n));
      infoOf.set(s, n.section(s.infoSection, 'sh_info', s));
    } else if (s.group) {
      contents.set(s, encodeGroup(s, n));
      infoOf.set(s, n.symbol(s.link, s.group.signature, s, 'the group signature'));
    } else {
      if (s.infoSection) infoOf.set(s, n.section(s.infoSection, 'sh_info', s));
      contents.set(s, s.type === SHT.NOBITS ? new Uint8Array(0) : s.data);
    }
  }
  return { contents, infoOf };
}

/** File offsets: the header, the contents in section order (aligned), then the section header table. */
function layOut(obj: ElfObject, contents: Map<ElfSection, Uint8Array>, shnum: number) {
  let off = EHDR_SIZE;
  const offsets = new Map<ElfSection, number>();
  for (const s of obj.sections) {
    off = align(off, Math.max(1, s.addralign));
    offsets.set(s, off);
    if (s.type !== SHT.NOBITS) off += contents.get(s)!.length;
  }
  const shoff = align(off, 8);
  const total = shoff + shnum * SHDR_SIZE;
  if (total > 2 ** 32)
    fail('ELF-WRITE-TOO-LARGE', `the laid-out object would be ${total} bytes`, {
      why: 'section alignments or sizes in the model are absurd (more than 4 GiB of output)',
      hint: 'check sh_addralign and the sizes of NOBITS sections in the input object',
    });
  return { offsets, shoff, total };
}

/** The ELF header, and section 0's extended counts when needed. */
function writeHeader(
  out: Buffer,
  obj: ElfObject,
  shoff: number,
  shnum: number,
  shstrndx: number,
  extended: boolean,
) {
  out.set([...ELF_MAGIC, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, obj.header.osabi, obj.header.abiversion], 0);
  out.writeUInt16LE(ET.REL, 16);
  out.writeUInt16LE(obj.header.machine, 18);
  out.writeUInt32LE(obj.header.version, 20);
  out.writeBigUInt64LE(obj.header.entry, 24);
  out.writeBigUInt64LE(0n, 32);
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt32LE(obj.header.flags, 48);
  out.writeUInt16LE(EHDR_SIZE, 52);
  out.writeUInt16LE(0, 54);
  out.writeUInt16LE(0, 56);
  out.writeUInt16LE(SHDR_SIZE, 58);
  out.writeUInt16LE(extended ? 0 : shnum, 60);
  out.writeUInt16LE(shstrndx >= SHN.LORESERVE ? SHN.XINDEX : shstrndx, 62);
  if (extended) out.writeBigUInt64LE(BigInt(shnum), shoff + 32);
  if (shstrndx >= SHN.LORESERVE) out.writeUInt32LE(shstrndx, shoff + 40);
}

/** Each section's contents and header; the model is kept in step with the file just written. */
function writeSections(
  out: Buffer,
  obj: ElfObject,
  n: Numbering,
  encoded: ReturnType<typeof encodeContents>,
  layout: ReturnType<typeof layOut>,
  shNames: Map<string, number>,
): void {
  const { contents, infoOf } = encoded;
  obj.sections.forEach((s, k) => {
    const data = contents.get(s)!;
    const o = layout.offsets.get(s)!;
    if (s.type !== SHT.NOBITS) out.set(data, o);
    const size = s.type === SHT.NOBITS ? s.size : data.length;
    const p = layout.shoff + (k + 1) * SHDR_SIZE;
    out.writeUInt32LE(shNames.get(s.name)!, p);
    out.writeUInt32LE(s.type >>> 0, p + 4);
    out.writeBigUInt64LE(BigInt(s.flags >>> 0) + BigInt(Math.floor(s.flags / 2 ** 32)) * 2n ** 32n, p + 8);
    out.writeBigUInt64LE(BigInt.asUintN(64, s.addr), p + 16);
    out.writeBigUInt64LE(BigInt(o), p + 24);
    out.writeBigUInt64LE(BigInt(size), p + 32);
    out.writeUInt32LE(n.section(s.link, 'sh_link', s), p + 40);
    out.writeUInt32LE((infoOf.get(s) ?? s.info) >>> 0, p + 44);
    out.writeBigUInt64LE(BigInt(s.addralign), p + 48);
    out.writeBigUInt64LE(BigInt(s.entsize), p + 56);
    s.offset = o;
    s.size = size;
    if (s.type !== SHT.NOBITS) s.data = data;
    if (infoOf.has(s)) s.info = infoOf.get(s)!;
  });
}

/** Serialize a relocatable object. Symbol tables in `obj` are reordered locals-first in place. */
export function writeElf(obj: ElfObject): Uint8Array {
  const shstrtab = prepare(obj);
  const symtabs = localsFirst(obj);
  const extended = addExtendedIndexTables(obj, symtabs);
  const n = new Numbering(obj, symtabs);
  const strtabs = stringTables(obj, shstrtab, symtabs);
  const encoded = encodeContents(obj, n, strtabs);
  const layout = layOut(obj, encoded.contents, n.shnum);
  const out = Buffer.alloc(layout.total);
  writeHeader(out, obj, layout.shoff, n.shnum, n.index.get(shstrtab)!, extended);
  writeSections(out, obj, n, encoded, layout, strtabs.get(shstrtab)!.offsets);
  return out;
}

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

/** A string table built from a set of names, deduplicated with tail merging. */
export function buildStringTable(names: Iterable<string>): { data: Buffer; offsets: Map<string, number> } {
  const unique = [...new Set(names)].filter((n) => n !== '');
  const reversed = unique.map((n) => ({ n, r: [...n].reverse().join('') }));
  reversed.sort((a, b) => (a.r < b.r ? 1 : a.r > b.r ? -1 : 0)); // descending: a suffix follows its owner
  const offsets = new Map<string, number>([['', 0]]);
  const placed: string[] = [];
  let size = 1;
  let prev: string | undefined;
  for (const { n, r } of reversed) {
    const prevR = prev === undefined ? undefined : [...prev].reverse().join('');
    if (prev !== undefined && prevR!.startsWith(r)) {
      offsets.set(n, offsets.get(prev)! + Buffer.byteLength(prev, 'latin1') - Buffer.byteLength(n, 'latin1'));
    } else {
      offsets.set(n, size);
      placed.push(n);
      size += Buffer.byteLength(n, 'latin1') + 1;
    }
    prev = n;
  }
  const data = Buffer.alloc(size);
  for (const n of placed) data.write(n, offsets.get(n)!, 'latin1');
  return { data, offsets };
}

/**
 * An unchanged object keeps its string tables byte for byte: when the table read from the file still
 * holds every name and is not much larger than a fresh one (nothing of substance was removed), reuse it.
 * After real edits (symbols dropped, names added) the fresh, compact table is used.
 */
function keepOriginalStrings(
  original: Uint8Array,
  fresh: { data: Buffer; offsets: Map<string, number> },
): { data: Buffer; offsets: Map<string, number> } | undefined {
  if (original.length === 0 || original[0] !== 0 || original[original.length - 1] !== 0) return undefined;
  if (original.length > fresh.data.length * 1.1 + 64) return undefined;
  const data = Buffer.from(original.buffer, original.byteOffset, original.byteLength);
  const whole = new Map<string, number>();
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0) continue;
    const str = data.toString('latin1', start, i);
    if (!whole.has(str)) whole.set(str, start);
    start = i + 1;
  }
  const offsets = new Map<string, number>([['', 0]]);
  for (const name of fresh.offsets.keys()) {
    if (name === '') continue;
    let at = whole.get(name);
    if (at === undefined) {
      const i = data.indexOf(Buffer.from(`${name}\0`, 'latin1'));
      if (i < 0) return undefined;
      at = i;
    }
    offsets.set(name, at);
  }
  return { data, offsets };
}

const align = (n: number, a: number) => (a > 1 ? Math.ceil(n / a) * a : n);

/** Serialize a relocatable object. Symbol tables in `obj` are reordered locals-first in place. */
export function writeElf(obj: ElfObject): Uint8Array {
  if (obj.header.type !== ET.REL)
    fail(
      'ELF-WRITE-UNSUPPORTED',
      `only relocatable objects (ET_REL) can be written, this is type ${obj.header.type}`,
      {
        hint: 'the writer rewrites .o/.ko files; executables are read-only here',
      },
    );

  // 0. the section-name table must exist
  if (!obj.shstrtab || !obj.sections.includes(obj.shstrtab)) {
    obj.shstrtab = createSection({ name: '.shstrtab', type: SHT.STRTAB });
    obj.sections.push(obj.shstrtab);
  }

  // 1. locals first in every symbol table
  const symtabs = obj.sections.filter((s) => s.symbols !== undefined);
  for (const t of symtabs) {
    const syms = t.symbols!;
    const locals = syms.filter((s) => s.bind === STB.LOCAL);
    if (locals.length !== syms.length) t.symbols = [...locals, ...syms.filter((s) => s.bind !== STB.LOCAL)];
  }

  // 2. extended numbering: make sure .symtab_shndx exists where needed (decided before numbering)
  const extended = obj.sections.length + 1 >= SHN.LORESERVE;
  if (extended) {
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
  }
  const index = new Map<ElfSection, number>();
  obj.sections.forEach((s, i) => {
    index.set(s, i + 1);
  });
  const shnum = obj.sections.length + 1;
  const secIndex = (s: ElfSection | null, what: string, owner: ElfSection): number => {
    if (s === null) return 0;
    const i = index.get(s);
    if (i === undefined)
      writeFail(
        'ELF-WRITE-DANGLING-SECTION',
        `${what} of ${owner.name} refers to section ${s.name}, which is not in the object`,
        owner.name,
      );
    return i;
  };
  const symIndexMaps = new Map<ElfSection, Map<ElfSymbol, number>>();
  for (const t of symtabs) {
    const m = new Map<ElfSymbol, number>();
    t.symbols!.forEach((s, i) => {
      m.set(s, i + 1);
    });
    symIndexMaps.set(t, m);
  }
  const symIndex = (
    table: ElfSection | null,
    sym: ElfSymbol | null,
    owner: ElfSection,
    what: string,
  ): number => {
    if (sym === null) return 0;
    const m = table ? symIndexMaps.get(table) : undefined;
    const i = m?.get(sym);
    if (i === undefined)
      writeFail(
        'ELF-WRITE-DANGLING-SYMBOL',
        `${what} in ${owner.name} refers to symbol ${sym.name}, which is not in ${table?.name ?? 'its (missing) symbol table'}`,
        owner.name,
        sym.name,
      );
    return i;
  };

  // 3. string tables: names each table must hold
  const strtabNames = new Map<ElfSection, string[]>();
  const want = (t: ElfSection, names: Iterable<string>) => {
    const a = strtabNames.get(t) ?? [];
    strtabNames.set(t, a);
    for (const n of names) a.push(n);
  };
  want(
    obj.shstrtab,
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
  const strtabs = new Map<ElfSection, { data: Buffer; offsets: Map<string, number> }>();
  for (const [t, names] of strtabNames) {
    const fresh = buildStringTable(names);
    strtabs.set(t, keepOriginalStrings(t.data, fresh) ?? fresh);
  }

  // 4. encode contents
  const contents = new Map<ElfSection, Uint8Array>();
  const infoOf = new Map<ElfSection, number>();
  for (const s of obj.sections) {
    const st = strtabs.get(s);
    if (st) {
      contents.set(s, st.data);
      continue;
    }
    if (s.symbols) {
      const syms = s.symbols;
      const names = strtabs.get(s.link!)!.offsets;
      const b = Buffer.alloc((syms.length + 1) * SYM_SIZE);
      let firstGlobal = syms.length + 1;
      syms.forEach((sym, k) => {
        const p = (k + 1) * SYM_SIZE;
        if (sym.bind !== STB.LOCAL && firstGlobal > k + 1) firstGlobal = k + 1;
        let shndx: number;
        if (sym.section) {
          shndx =
            index.get(sym.section) ??
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
      infoOf.set(s, firstGlobal);
      contents.set(s, b);
      continue;
    }
    if (s.type === SHT.SYMTAB_SHNDX) {
      const t = s.link;
      const syms = t?.symbols ?? [];
      const b = Buffer.alloc((syms.length + 1) * 4);
      syms.forEach((sym, k) => {
        const i = sym.section ? (index.get(sym.section) ?? 0) : 0;
        if (i >= SHN.LORESERVE) b.writeUInt32LE(i, (k + 1) * 4);
      });
      contents.set(s, b);
      continue;
    }
    if (s.relocations) {
      const rela = s.type === SHT.RELA;
      const esz = rela ? RELA_SIZE : REL_SIZE;
      const b = Buffer.alloc(s.relocations.length * esz);
      s.relocations.forEach((r, k) => {
        const p = k * esz;
        const si = symIndex(s.link, r.symbol, s, `relocation ${k}`);
        b.writeBigUInt64LE(BigInt.asUintN(64, r.offset), p);
        b.writeBigUInt64LE((BigInt(si) << 32n) | BigInt(r.type >>> 0), p + 8);
        if (rela) b.writeBigInt64LE(BigInt.asIntN(64, r.addend), p + 16);
      });
      contents.set(s, b);
      infoOf.set(s, secIndex(s.infoSection, 'sh_info', s));
      continue;
    }
    if (s.group) {
      const b = Buffer.alloc(4 + s.group.members.length * 4);
      b.writeUInt32LE(s.group.flags, 0);
      s.group.members.forEach((m, k) => {
        b.writeUInt32LE(secIndex(m, `group member ${k}`, s), 4 + k * 4);
      });
      contents.set(s, b);
      infoOf.set(s, symIndex(s.link, s.group.signature, s, 'the group signature'));
      continue;
    }
    if (s.infoSection) infoOf.set(s, secIndex(s.infoSection, 'sh_info', s));
    contents.set(s, s.type === SHT.NOBITS ? new Uint8Array(0) : s.data);
  }

  // 5. layout: header, contents in section order, section header table
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
  const out = Buffer.alloc(total);

  // ELF header
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
  const shstrndx = index.get(obj.shstrtab)!;
  out.writeUInt16LE(extended ? 0 : shnum, 60);
  out.writeUInt16LE(shstrndx >= SHN.LORESERVE ? SHN.XINDEX : shstrndx, 62);

  // section 0 carries the extended counts
  if (extended) out.writeBigUInt64LE(BigInt(shnum), shoff + 32);
  if (shstrndx >= SHN.LORESERVE) out.writeUInt32LE(shstrndx, shoff + 40);

  const shNames = strtabs.get(obj.shstrtab)!.offsets;
  obj.sections.forEach((s, k) => {
    const data = contents.get(s)!;
    const o = offsets.get(s)!;
    if (s.type !== SHT.NOBITS) out.set(data, o);
    const size = s.type === SHT.NOBITS ? s.size : data.length;
    const p = shoff + (k + 1) * SHDR_SIZE;
    out.writeUInt32LE(shNames.get(s.name)!, p);
    out.writeUInt32LE(s.type >>> 0, p + 4);
    out.writeBigUInt64LE(BigInt(s.flags >>> 0) + BigInt(Math.floor(s.flags / 2 ** 32)) * 2n ** 32n, p + 8);
    out.writeBigUInt64LE(BigInt.asUintN(64, s.addr), p + 16);
    out.writeBigUInt64LE(BigInt(o), p + 24);
    out.writeBigUInt64LE(BigInt(size), p + 32);
    out.writeUInt32LE(secIndex(s.link, 'sh_link', s), p + 40);
    out.writeUInt32LE((infoOf.get(s) ?? s.info) >>> 0, p + 44);
    out.writeBigUInt64LE(BigInt(s.addralign), p + 48);
    out.writeBigUInt64LE(BigInt(s.entsize), p + 56);
    // keep the model in step with the file just written
    s.offset = o;
    s.size = size;
    if (s.type !== SHT.NOBITS) s.data = data;
    if (infoOf.has(s)) s.info = infoOf.get(s)!;
  });
  return out;
}

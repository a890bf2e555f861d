/*
 * Reader: bytes of an ELF64 little-endian x86-64 file → the ElfObject model (model.ts).
 *
 * The headers (the ELF header and the named section header table) are headers.ts's walk, shared with the
 * piecewise readers of large files (file.ts, file-sync.ts). Here: readElf(bytes), the whole model with
 * contents, symbols, relocations, groups and notes resolved into references. For relocatable objects and
 * modules, which are small.
 *
 * Every offset, size, count and index is checked (bounds.ts) before use; damage becomes a SutureError
 * naming the field and its byte offset, never a raw exception, an endless loop or a huge allocation.
 */
import { readFile } from 'node:fs/promises';
import { elfFail, safeNumber, stringAt, unreadableFile, type Where } from './bounds.js';
import { PHDR_SIZE, REL_SIZE, RELA_SIZE, SHF, SHN, SHT, SYM_SIZE } from './constants.js';
import {
  asBuffer,
  hasFileBytes,
  type ParsedElfHeader,
  type RawSectionHeader,
  readHeaders,
} from './headers.js';
import {
  type ElfGroup,
  ElfObject,
  type ElfProgramHeader,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from './model.js';
import { parseNotes } from './notes.js';

function parseProgramHeaders(b: Buffer, h: ParsedElfHeader, file?: string): ElfProgramHeader[] {
  const out: ElfProgramHeader[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const p = h.phoff + i * PHDR_SIZE;
    const w = (d: number, f: string): Where => ({ file, offset: p + d, field: `program header[${i}].${f}` });
    out.push({
      type: b.readUInt32LE(p),
      flags: b.readUInt32LE(p + 4),
      offset: safeNumber(b.readBigUInt64LE(p + 8), w(8, 'p_offset')),
      vaddr: b.readBigUInt64LE(p + 16),
      paddr: b.readBigUInt64LE(p + 24),
      filesz: safeNumber(b.readBigUInt64LE(p + 32), w(32, 'p_filesz')),
      memsz: safeNumber(b.readBigUInt64LE(p + 40), w(40, 'p_memsz')),
      align: safeNumber(b.readBigUInt64LE(p + 48), w(48, 'p_align')),
    });
  }
  return out;
}

/** Read a whole ELF file from disk into the model (for objects and modules; use symbol-index.ts for vmlinux). */
export async function readElfFile(path: string): Promise<ElfObject> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    return unreadableFile(path, 'read', e);
  }
  return readElf(bytes, path);
}

/** Parse a whole ELF file held in memory into the model. */
export function readElf(bytes: Uint8Array, file?: string): ElfObject {
  const b = asBuffer(bytes);
  const { header, sections: raw, shstrndx } = readHeaders(b, file);
  const programHeaders = parseProgramHeaders(b, header, file);
  const secs: ElfSection[] = raw.map((h) => ({
    name: h.name,
    type: h.type,
    flags: h.flags,
    addr: h.addr,
    offset: h.offset,
    size: h.size,
    link: null,
    info: h.info,
    infoSection: null,
    addralign: h.addralign,
    entsize: h.entsize,
    data: hasFileBytes(h) ? b.subarray(h.offset, h.offset + h.size) : new Uint8Array(0),
  }));
  const shnum = raw.length;
  const fieldAt = (h: RawSectionHeader, d: number, f: string): Where => ({
    file,
    offset: h.headerOffset + d,
    field: `section[${h.index}].${f}`,
  });

  // links and info references
  for (let i = 1; i < shnum; i++) {
    const h = raw[i]!;
    const s = secs[i]!;
    s.link = h.link !== 0 ? secs[h.link]! : null;
    const infoIsSection = h.type === SHT.RELA || h.type === SHT.REL || (h.flags & SHF.INFO_LINK) !== 0;
    if (infoIsSection && h.info !== 0) {
      if (h.info >= shnum)
        elfFail(
          'ELF-BAD-INFO',
          `sh_info = ${h.info} is not a section (there are ${shnum})`,
          fieldAt(h, 44, 'sh_info'),
        );
      s.infoSection = secs[h.info]!;
    }
  }

  // symbol tables
  const shndxTables = new Map<number, RawSectionHeader>();
  for (const h of raw) if (h.type === SHT.SYMTAB_SHNDX) shndxTables.set(h.link, h);
  for (const h of raw) {
    if (h.type !== SHT.SYMTAB && h.type !== SHT.DYNSYM) continue;
    secs[h.index]!.symbols = parseSymbols(b, h, raw, secs, shndxTables.get(h.index), file);
  }

  // relocations, groups, notes
  for (const h of raw) {
    const s = secs[h.index]!;
    if (h.type === SHT.RELA || h.type === SHT.REL) s.relocations = parseRelocations(b, h, raw, secs, file);
    else if (h.type === SHT.GROUP) s.group = parseGroup(b, h, raw, secs, file);
    else if (h.type === SHT.NOTE)
      s.notes = parseNotes(asBuffer(s.data), h.offset, h.addralign, `section[${h.index}] (${h.name})`, file);
  }
  void fieldAt;
  const obj = new ElfObject(
    {
      type: header.type,
      machine: header.machine,
      version: header.version,
      osabi: header.osabi,
      abiversion: header.abiversion,
      entry: header.entry,
      flags: header.flags,
      phoff: header.phoff,
      shoff: header.shoff,
    },
    secs.slice(1),
    programHeaders,
    file,
  );
  obj.shstrtab = shstrndx !== 0 ? (secs[shstrndx] ?? null) : null;
  return obj;
}

function linkedStrtab(b: Buffer, h: RawSectionHeader, raw: RawSectionHeader[], file?: string): Buffer {
  const sh = raw[h.link];
  const w: Where = { file, offset: h.headerOffset + 40, field: `section[${h.index}].sh_link` };
  if (!sh || h.link === 0 || sh.type !== SHT.STRTAB)
    elfFail(
      'ELF-BAD-LINK',
      `symbol table ${h.name} links to section ${h.link}, which is not a string table`,
      w,
    );
  const t = b.subarray(sh.offset, sh.offset + sh.size);
  if (t.length > 0 && t[t.length - 1] !== 0)
    elfFail('ELF-STRTAB-UNTERMINATED', `string table ${sh.name} does not end with a NUL byte`, {
      file,
      offset: sh.offset + sh.size - 1,
      field: `section[${sh.index}] (${sh.name})`,
    });
  return t;
}

/** A symbol table's header checks (entry size, whole entries, sh_info within it); its entry count. */
function symbolCount(h: RawSectionHeader, file?: string): number {
  const w = (d: number, f: string): Where => ({
    file,
    offset: h.headerOffset + d,
    field: `section[${h.index}].${f}`,
  });
  if (h.entsize !== SYM_SIZE)
    elfFail(
      'ELF-BAD-ENTSIZE',
      `symbol table ${h.name} has sh_entsize ${h.entsize}, expected 24`,
      w(56, 'sh_entsize'),
    );
  if (h.size % SYM_SIZE !== 0)
    elfFail(
      'ELF-BAD-SIZE',
      `symbol table ${h.name} size ${h.size} is not a multiple of 24`,
      w(32, 'sh_size'),
    );
  const count = h.size / SYM_SIZE;
  if (h.info > count)
    elfFail(
      'ELF-BAD-INFO',
      `sh_info (first global) = ${h.info} exceeds the ${count} symbols`,
      w(44, 'sh_info'),
    );
  return count;
}

/** The SHT_SYMTAB_SHNDX entries of a table of `count` symbols, checked to cover them all. */
function extendedIndices(
  b: Buffer,
  shndxTable: RawSectionHeader | undefined,
  count: number,
  file?: string,
): Buffer | undefined {
  if (!shndxTable) return undefined;
  if (shndxTable.size < count * 4)
    elfFail('ELF-TRUNCATED', `${shndxTable.name} holds ${shndxTable.size / 4} entries for ${count} symbols`, {
      file,
      offset: shndxTable.headerOffset + 32,
      field: `section[${shndxTable.index}].sh_size`,
    });
  return b.subarray(shndxTable.offset, shndxTable.offset + shndxTable.size);
}

/** Where symbol i's st_shndx is, for a diagnostic. */
function shndxAt(h: RawSectionHeader, i: number, file?: string): Where {
  return { file, offset: h.offset + i * SYM_SIZE + 6, field: `${h.name}[${i}].st_shndx` };
}

/** Symbol i's section index: st_shndx, or its SHT_SYMTAB_SHNDX entry for SHN_XINDEX; checked to be a section. */
function symbolShndx(
  stored: number,
  i: number,
  h: RawSectionHeader,
  xindex: Buffer | undefined,
  shndxTable: RawSectionHeader | undefined,
  shnum: number,
  file?: string,
): number {
  if (stored === SHN.XINDEX) {
    if (!xindex)
      elfFail(
        'ELF-BAD-SHNDX',
        'st_shndx is SHN_XINDEX but there is no SHT_SYMTAB_SHNDX section',
        shndxAt(h, i, file),
      );
    const shndx = xindex.readUInt32LE(i * 4);
    if (shndx >= shnum)
      elfFail('ELF-BAD-SHNDX', `extended section index ${shndx} is not a section (there are ${shnum})`, {
        file,
        offset: shndxTable!.offset + i * 4,
        field: `${shndxTable!.name}[${i}]`,
      });
    return shndx;
  }
  if (stored !== SHN.UNDEF && stored < SHN.LORESERVE && stored >= shnum)
    elfFail(
      'ELF-BAD-SHNDX',
      `st_shndx = ${stored} is not a section (there are ${shnum})`,
      shndxAt(h, i, file),
    );
  return stored;
}

function parseSymbols(
  b: Buffer,
  h: RawSectionHeader,
  raw: RawSectionHeader[],
  secs: ElfSection[],
  shndxTable: RawSectionHeader | undefined,
  file?: string,
): ElfSymbol[] {
  const count = symbolCount(h, file);
  const strtab = linkedStrtab(b, h, raw, file);
  const xindex = extendedIndices(b, shndxTable, count, file);
  const shnum = raw.length;
  const out: ElfSymbol[] = [];
  for (let i = 1; i < count; i++) {
    const p = h.offset + i * SYM_SIZE;
    const sw = (d: number, f: string): Where => ({ file, offset: p + d, field: `${h.name}[${i}].${f}` });
    const infoByte = b[p + 4]!;
    const other = b[p + 5]!;
    const stored = b.readUInt16LE(p + 6);
    const shndx = symbolShndx(stored, i, h, xindex, shndxTable, shnum, file);
    const isSection = shndx !== SHN.UNDEF && (shndx < SHN.LORESERVE || stored === SHN.XINDEX);
    out.push({
      name: stringAt(strtab, b.readUInt32LE(p), sw(0, 'st_name'), `the string table of ${h.name}`),
      value: b.readBigUInt64LE(p + 8),
      size: safeNumber(b.readBigUInt64LE(p + 16), sw(16, 'st_size')),
      bind: infoByte >> 4,
      type: infoByte & 0xf,
      visibility: other & 3,
      other,
      section: isSection ? secs[shndx]! : null,
      shndx,
    });
  }
  return out;
}

function symbolsOf(
  h: RawSectionHeader,
  raw: RawSectionHeader[],
  secs: ElfSection[],
  file?: string,
): ElfSymbol[] {
  const sh = raw[h.link];
  if (!sh || h.link === 0 || (sh.type !== SHT.SYMTAB && sh.type !== SHT.DYNSYM))
    elfFail('ELF-BAD-LINK', `${h.name} links to section ${h.link}, which is not a symbol table`, {
      file,
      offset: h.headerOffset + 40,
      field: `section[${h.index}].sh_link`,
    });
  return secs[h.link]!.symbols ?? [];
}

function parseRelocations(
  b: Buffer,
  h: RawSectionHeader,
  raw: RawSectionHeader[],
  secs: ElfSection[],
  file?: string,
): ElfRelocation[] {
  const rela = h.type === SHT.RELA;
  const esz = rela ? RELA_SIZE : REL_SIZE;
  const w = (d: number, f: string): Where => ({
    file,
    offset: h.headerOffset + d,
    field: `section[${h.index}].${f}`,
  });
  if (h.entsize !== esz)
    elfFail(
      'ELF-BAD-ENTSIZE',
      `relocation section ${h.name} has sh_entsize ${h.entsize}, expected ${esz}`,
      w(56, 'sh_entsize'),
    );
  if (h.size % esz !== 0)
    elfFail(
      'ELF-BAD-SIZE',
      `relocation section ${h.name} size ${h.size} is not a multiple of ${esz}`,
      w(32, 'sh_size'),
    );
  const count = h.size / esz;
  const syms = h.link === 0 && count === 0 ? [] : h.link === 0 ? [] : symbolsOf(h, raw, secs, file);
  const out: ElfRelocation[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const p = h.offset + i * esz;
    const info = b.readBigUInt64LE(p + 8);
    const symIndex = Number(info >> 32n);
    if (symIndex > syms.length)
      elfFail(
        'ELF-BAD-SYMBOL',
        `relocation ${i} of ${h.name} names symbol ${symIndex}, the table has ${syms.length + 1}`,
        {
          file,
          offset: p + 8,
          field: `${h.name}[${i}].r_info`,
        },
      );
    out[i] = {
      offset: b.readBigUInt64LE(p),
      type: Number(info & 0xffffffffn),
      symbol: symIndex === 0 ? null : syms[symIndex - 1]!,
      addend: rela ? b.readBigInt64LE(p + 16) : 0n,
    };
  }
  return out;
}

function parseGroup(
  b: Buffer,
  h: RawSectionHeader,
  raw: RawSectionHeader[],
  secs: ElfSection[],
  file?: string,
): ElfGroup {
  const w = (d: number, f: string): Where => ({
    file,
    offset: h.headerOffset + d,
    field: `section[${h.index}].${f}`,
  });
  if (h.size < 4 || h.size % 4 !== 0)
    elfFail(
      'ELF-BAD-SIZE',
      `group section ${h.name} size ${h.size} is not a positive multiple of 4`,
      w(32, 'sh_size'),
    );
  const syms = symbolsOf(h, raw, secs, file);
  if (h.info > syms.length)
    elfFail('ELF-BAD-INFO', `group signature symbol ${h.info} is not in the symbol table`, w(44, 'sh_info'));
  const members: ElfSection[] = [];
  for (let p = 4; p < h.size; p += 4) {
    const idx = b.readUInt32LE(h.offset + p);
    if (idx === 0 || idx >= raw.length)
      elfFail('ELF-BAD-INDEX', `group member ${idx} is not a section (there are ${raw.length})`, {
        file,
        offset: h.offset + p,
        field: `${h.name}[${p / 4}]`,
      });
    members.push(secs[idx]!);
  }
  return { flags: b.readUInt32LE(h.offset), members, signature: h.info === 0 ? null : syms[h.info - 1]! };
}

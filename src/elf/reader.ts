/*
 * Reader: bytes of an ELF64 little-endian x86-64 file → the ElfObject model (model.ts).
 *
 * Two levels:
 *  - headers (parseElfHeader, parseSectionHeaders): the ELF header and the section header table with
 *    names. Enough for large files read piecewise (build-id.ts, symbol-index.ts read only these and the
 *    one or two sections they need).
 *  - readElf(bytes): the whole model with contents, symbols, relocations, groups and notes resolved into
 *    references. For relocatable objects and modules, which are small.
 *
 * Every offset, size, count and index is checked (bounds.ts) before use; damage becomes a SutureError
 * naming the field and its byte offset, never a raw exception, an endless loop or a huge allocation.
 */
import { readFile } from 'node:fs/promises';
import { checkRange, elfFail, safeNumber, stringAt, type Where } from './bounds.js';
import {
  EHDR_SIZE,
  ELFCLASS64,
  ELFDATA2LSB,
  EM_X86_64,
  PHDR_SIZE,
  REL_SIZE,
  RELA_SIZE,
  SHDR_SIZE,
  SHF,
  SHN,
  SHT,
  SYM_SIZE,
} from './constants.js';
import {
  type ElfGroup,
  type ElfHeader,
  type ElfNote,
  ElfObject,
  type ElfProgramHeader,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from './model.js';

/** A section header as it is in the file, indices unresolved. */
export interface RawSectionHeader {
  index: number;
  /** file offset of this header */
  headerOffset: number;
  nameOffset: number;
  name: string;
  type: number;
  flags: number;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export interface ParsedElfHeader extends ElfHeader {
  phnum: number;
  /** e_shnum as stored (0 with extended numbering) */
  shnumField: number;
  /** e_shstrndx as stored (SHN_XINDEX with extended numbering) */
  shstrndxField: number;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Parse the 64-byte ELF header; `b` holds at least the file's first bytes. */
export function parseElfHeader(bytes: Uint8Array, fileSize: number, file?: string): ParsedElfHeader {
  const b = asBuffer(bytes);
  const at = (offset: number, field: string): Where => ({ file, offset, field });
  if (fileSize < 4 || b.length < 4 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46)
    elfFail(
      'ELF-NOT-ELF',
      'not an ELF file (no \\x7fELF magic)',
      at(0, 'e_ident[EI_MAG]'),
      undefined,
      'pass an ELF object, module or vmlinux',
    );
  if (fileSize < EHDR_SIZE || b.length < EHDR_SIZE)
    elfFail(
      'ELF-TRUNCATED',
      `the file is ${fileSize} bytes, shorter than the 64-byte ELF header`,
      at(0, 'e_ident'),
    );
  if (b[4] !== ELFCLASS64)
    elfFail(
      'ELF-WRONG-CLASS',
      `EI_CLASS is ${b[4]}, only ELFCLASS64 (2) is supported`,
      at(4, 'e_ident[EI_CLASS]'),
      'Suture reads 64-bit x86-64 kernels and modules only',
    );
  if (b[5] !== ELFDATA2LSB)
    elfFail(
      'ELF-WRONG-ENDIAN',
      `EI_DATA is ${b[5]}, only little-endian (1) is supported`,
      at(5, 'e_ident[EI_DATA]'),
      'Suture reads little-endian x86-64 files only',
    );
  if (b[6] !== 1)
    elfFail('ELF-BAD-VERSION', `EI_VERSION is ${b[6]}, expected 1`, at(6, 'e_ident[EI_VERSION]'));
  const machine = b.readUInt16LE(18);
  if (machine !== EM_X86_64)
    elfFail(
      'ELF-WRONG-MACHINE',
      `e_machine is ${machine}, only x86-64 (62) is supported`,
      at(18, 'e_machine'),
      'Suture targets x86-64 kernels',
    );
  const ehsize = b.readUInt16LE(52);
  if (ehsize !== EHDR_SIZE)
    elfFail('ELF-BAD-HEADER', `e_ehsize is ${ehsize}, expected 64`, at(52, 'e_ehsize'));
  const phoff = safeNumber(b.readBigUInt64LE(32), at(32, 'e_phoff'));
  const shoff = safeNumber(b.readBigUInt64LE(40), at(40, 'e_shoff'));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  const shentsize = b.readUInt16LE(58);
  const shnumField = b.readUInt16LE(60);
  const shstrndxField = b.readUInt16LE(62);
  if (phnum > 0) {
    if (phentsize !== PHDR_SIZE)
      elfFail('ELF-BAD-HEADER', `e_phentsize is ${phentsize}, expected 56`, at(54, 'e_phentsize'));
    checkRange(phoff, phnum * PHDR_SIZE, fileSize, at(32, 'e_phoff'));
  }
  if (shoff !== 0) {
    if (shentsize !== SHDR_SIZE)
      elfFail('ELF-BAD-HEADER', `e_shentsize is ${shentsize}, expected 64`, at(58, 'e_shentsize'));
    checkRange(shoff, SHDR_SIZE, fileSize, at(40, 'e_shoff'));
  }
  return {
    type: b.readUInt16LE(16),
    machine,
    version: b.readUInt32LE(20),
    osabi: b[7] ?? 0,
    abiversion: b[8] ?? 0,
    entry: b.readBigUInt64LE(24),
    flags: b.readUInt32LE(48),
    phoff,
    shoff,
    phnum,
    shnumField,
    shstrndxField,
  };
}

/** One raw section header at `pos` in `b` (which starts at file offset `base`). */
function parseOneSectionHeader(
  b: Buffer,
  pos: number,
  index: number,
  base: number,
  file?: string,
): RawSectionHeader {
  const off = base + pos;
  const w = (d: number, f: string): Where => ({ file, offset: off + d, field: `section[${index}].${f}` });
  return {
    index,
    headerOffset: off,
    nameOffset: b.readUInt32LE(pos),
    name: '',
    type: b.readUInt32LE(pos + 4),
    flags: safeNumber(b.readBigUInt64LE(pos + 8), w(8, 'sh_flags')),
    addr: b.readBigUInt64LE(pos + 16),
    offset: safeNumber(b.readBigUInt64LE(pos + 24), w(24, 'sh_offset')),
    size: safeNumber(b.readBigUInt64LE(pos + 32), w(32, 'sh_size')),
    link: b.readUInt32LE(pos + 40),
    info: b.readUInt32LE(pos + 44),
    addralign: safeNumber(b.readBigUInt64LE(pos + 48), w(48, 'sh_addralign')),
    entsize: safeNumber(b.readBigUInt64LE(pos + 56), w(56, 'sh_entsize')),
  };
}

/** Section count and shstrndx, resolving extended numbering through section 0. */
export function sectionCounts(
  h: ParsedElfHeader,
  section0: RawSectionHeader | undefined,
  fileSize: number,
  file?: string,
): { shnum: number; shstrndx: number } {
  if (h.shoff === 0) return { shnum: 0, shstrndx: 0 };
  let shnum = h.shnumField;
  if (shnum === 0) {
    if (!section0) return { shnum: 0, shstrndx: 0 };
    shnum = section0.size;
  }
  const maxCount = Math.floor((fileSize - h.shoff) / SHDR_SIZE);
  if (shnum > maxCount)
    elfFail(
      'ELF-BAD-COUNT',
      `${h.shnumField === 0 ? 'section[0].sh_size (extended e_shnum)' : 'e_shnum'} = ${shnum} section headers do not fit in the file after e_shoff (room for ${maxCount})`,
      {
        file,
        offset: h.shnumField === 0 ? h.shoff + 32 : 60,
        field: h.shnumField === 0 ? 'section[0].sh_size' : 'e_shnum',
      },
    );
  let shstrndx = h.shstrndxField;
  if (shstrndx === SHN.XINDEX) shstrndx = section0?.link ?? 0;
  if (shstrndx >= shnum && !(shstrndx === 0 && shnum === 0))
    elfFail('ELF-BAD-INDEX', `e_shstrndx = ${shstrndx} is not a section (there are ${shnum})`, {
      file,
      offset: h.shstrndxField === SHN.XINDEX ? h.shoff + 40 : 62,
      field: h.shstrndxField === SHN.XINDEX ? 'section[0].sh_link' : 'e_shstrndx',
    });
  return { shnum, shstrndx };
}

/**
 * Parse the section header table. `table` holds `shnum` headers starting at file offset `base`;
 * `readShstrtab` fetches the bytes of the section-name string table.
 */
export function parseSectionHeaders(
  table: Uint8Array,
  base: number,
  shnum: number,
  shstrndx: number,
  fileSize: number,
  shstrtab: (h: RawSectionHeader) => Buffer,
  file?: string,
): RawSectionHeader[] {
  const b = asBuffer(table);
  const headers: RawSectionHeader[] = [];
  for (let i = 0; i < shnum; i++) headers.push(parseOneSectionHeader(b, i * SHDR_SIZE, i, base, file));
  for (const h of headers) {
    const w = (d: number, f: string): Where => ({
      file,
      offset: h.headerOffset + d,
      field: `section[${h.index}].${f}`,
    });
    if (h.type !== SHT.NOBITS && h.type !== SHT.NULL && h.index !== 0)
      checkRange(h.offset, h.size, fileSize, w(24, 'sh_offset'));
    if (h.index !== 0 && h.link >= shnum)
      elfFail('ELF-BAD-LINK', `sh_link = ${h.link} is not a section (there are ${shnum})`, w(40, 'sh_link'));
    if (h.addralign > 1 && !Number.isInteger(Math.log2(h.addralign)))
      elfFail('ELF-BAD-ALIGN', `sh_addralign = ${h.addralign} is not a power of two`, w(48, 'sh_addralign'));
  }
  if (shnum > 0) {
    const sh = headers[shstrndx];
    if (sh && shstrndx !== 0) {
      if (sh.type !== SHT.STRTAB)
        elfFail('ELF-BAD-LINK', `e_shstrndx names section ${shstrndx}, which is not a string table`, {
          file,
          offset: sh.headerOffset + 4,
          field: `section[${shstrndx}].sh_type`,
        });
      const names = shstrtab(sh);
      if (names.length > 0 && names[names.length - 1] !== 0)
        elfFail('ELF-STRTAB-UNTERMINATED', 'the section name table does not end with a NUL byte', {
          file,
          offset: sh.offset + sh.size - 1,
          field: `section[${shstrndx}] (.shstrtab)`,
        });
      for (const h of headers)
        h.name = stringAt(
          names,
          h.nameOffset,
          { file, offset: h.headerOffset, field: `section[${h.index}].sh_name` },
          '.shstrtab',
        );
    }
  }
  return headers;
}

/** Read the ELF header and section header table from a whole-file buffer. */
export function readHeaders(
  bytes: Uint8Array,
  file?: string,
): { header: ParsedElfHeader; sections: RawSectionHeader[]; shstrndx: number } {
  const b = asBuffer(bytes);
  const header = parseElfHeader(b, b.length, file);
  let section0: RawSectionHeader | undefined;
  if (header.shoff !== 0) section0 = parseOneSectionHeader(b, header.shoff, 0, 0, file);
  const { shnum, shstrndx } = sectionCounts(header, section0, b.length, file);
  const sections = parseSectionHeaders(
    b.subarray(header.shoff, header.shoff + shnum * SHDR_SIZE),
    header.shoff,
    shnum,
    shstrndx,
    b.length,
    (h) => b.subarray(h.offset, h.offset + h.size),
    file,
  );
  return { header, sections, shstrndx };
}

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

/** Parse the notes in a SHT_NOTE section's bytes (`base` = file offset of `data`). */
export function parseNotes(
  data: Buffer,
  base: number,
  align: number,
  field: string,
  file?: string,
): ElfNote[] {
  const a = align === 8 ? 8 : 4;
  const pad = (n: number) => (n + a - 1) & ~(a - 1);
  const notes: ElfNote[] = [];
  let p = 0;
  while (p < data.length) {
    const w: Where = { file, offset: base + p, field: `${field} note at +${p}` };
    if (p + 12 > data.length) elfFail('ELF-TRUNCATED', 'a note header runs past the end of its section', w);
    const namesz = data.readUInt32LE(p);
    const descsz = data.readUInt32LE(p + 4);
    const type = data.readUInt32LE(p + 8);
    const nameStart = p + 12;
    // padding counts from the note's start: with 8-byte alignment (.note.gnu.property) desc is at +16
    const descStart = p + pad(12 + namesz);
    const end = descStart + pad(descsz);
    if (nameStart + namesz > data.length || descStart + descsz > data.length)
      elfFail(
        'ELF-TRUNCATED',
        `a note (namesz ${namesz}, descsz ${descsz}) runs past the end of its section`,
        w,
      );
    let nameEnd = nameStart + namesz;
    if (namesz > 0 && data[nameEnd - 1] === 0) nameEnd--;
    notes.push({
      name: data.toString('latin1', nameStart, nameEnd),
      type,
      desc: data.subarray(descStart, descStart + descsz),
      offset: base + p,
    });
    p = Math.min(end, data.length);
  }
  return notes;
}

/** Read a whole ELF file from disk into the model (for objects and modules; use symbol-index.ts for vmlinux). */
export async function readElfFile(path: string): Promise<ElfObject> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return elfFail(
      'ELF-UNREADABLE',
      `cannot read ${path}: ${err.code ?? err.message}`,
      { file: path, offset: 0, field: 'file' },
      'the file is missing or not readable',
      'check the path and permissions',
    );
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
    data:
      h.type === SHT.NOBITS || h.type === SHT.NULL
        ? new Uint8Array(0)
        : b.subarray(h.offset, h.offset + h.size),
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

function parseSymbols(
  b: Buffer,
  h: RawSectionHeader,
  raw: RawSectionHeader[],
  secs: ElfSection[],
  shndxTable: RawSectionHeader | undefined,
  file?: string,
): ElfSymbol[] {
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
  const strtab = linkedStrtab(b, h, raw, file);
  let xindex: Buffer | undefined;
  if (shndxTable) {
    if (shndxTable.size < count * 4)
      elfFail(
        'ELF-TRUNCATED',
        `${shndxTable.name} holds ${shndxTable.size / 4} entries for ${count} symbols`,
        {
          file,
          offset: shndxTable.headerOffset + 32,
          field: `section[${shndxTable.index}].sh_size`,
        },
      );
    xindex = b.subarray(shndxTable.offset, shndxTable.offset + shndxTable.size);
  }
  const shnum = raw.length;
  const out: ElfSymbol[] = [];
  for (let i = 1; i < count; i++) {
    const p = h.offset + i * SYM_SIZE;
    const sw = (d: number, f: string): Where => ({ file, offset: p + d, field: `${h.name}[${i}].${f}` });
    const infoByte = b[p + 4]!;
    const other = b[p + 5]!;
    let shndx = b.readUInt16LE(p + 6);
    if (shndx === SHN.XINDEX) {
      if (!xindex)
        elfFail(
          'ELF-BAD-SHNDX',
          'st_shndx is SHN_XINDEX but there is no SHT_SYMTAB_SHNDX section',
          sw(6, 'st_shndx'),
        );
      shndx = xindex.readUInt32LE(i * 4);
      if (shndx >= shnum)
        elfFail('ELF-BAD-SHNDX', `extended section index ${shndx} is not a section (there are ${shnum})`, {
          file,
          offset: shndxTable!.offset + i * 4,
          field: `${shndxTable!.name}[${i}]`,
        });
    } else if (shndx !== SHN.UNDEF && shndx < SHN.LORESERVE && shndx >= shnum) {
      elfFail(
        'ELF-BAD-SHNDX',
        `st_shndx = ${shndx} is not a section (there are ${shnum})`,
        sw(6, 'st_shndx'),
      );
    }
    const isSection = shndx !== SHN.UNDEF && (shndx < SHN.LORESERVE || b.readUInt16LE(p + 6) === SHN.XINDEX);
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

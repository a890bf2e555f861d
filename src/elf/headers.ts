/*
 * ELF headers: the ELF header and the section header table with names, from a file read in pieces.
 *
 * One walk (`headerWalk`) knows which bytes it needs next — the ELF header, section 0 (extended
 * numbering), the section header table, the section-name table — and checks each before asking for the
 * next. It is driven three ways: over a whole-file buffer (`readHeaders`, for readElf), with blocking
 * preads (`readHeadersSync`, file-sync.ts) and with async reads (`readHeadersAsync`, file.ts), so the
 * sync and async paths parse and check the same way, in the same order, through the same code.
 *
 * Every offset, size, count and index is checked (bounds.ts) before use; damage becomes a SutureError
 * naming the field and its byte offset.
 */
import { checkRange, elfFail, safeNumber, stringAt, type Where } from './bounds.js';
import {
  EHDR_SIZE,
  ELF_MAGIC,
  ELFCLASS64,
  ELFDATA2LSB,
  EM_X86_64,
  EV_CURRENT,
  PHDR_SIZE,
  SHDR_SIZE,
  SHN,
  SHT,
} from './constants.js';
import type { ElfHeader } from './model.js';

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

export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Parse the 64-byte ELF header; `b` holds at least the file's first bytes. */
export function parseElfHeader(bytes: Uint8Array, fileSize: number, file?: string): ParsedElfHeader {
  const b = asBuffer(bytes);
  const at = (offset: number, field: string): Where => ({ file, offset, field });
  if (fileSize < 4 || b.length < 4 || ELF_MAGIC.some((byte, i) => b[i] !== byte))
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
  if (b[6] !== EV_CURRENT)
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

/** Whether a section's bytes are in the file (not SHT_NOBITS, not SHT_NULL). */
export function hasFileBytes(h: { type: number }): boolean {
  return h.type !== SHT.NOBITS && h.type !== SHT.NULL;
}

/** Parse `shnum` section headers held in `table` (at file offset `base`) and check them; names unset. */
function parseSectionTable(
  table: Buffer,
  base: number,
  shnum: number,
  fileSize: number,
  file?: string,
): RawSectionHeader[] {
  const headers: RawSectionHeader[] = [];
  for (let i = 0; i < shnum; i++) headers.push(parseOneSectionHeader(table, i * SHDR_SIZE, i, base, file));
  for (const h of headers) {
    const w = (d: number, f: string): Where => ({
      file,
      offset: h.headerOffset + d,
      field: `section[${h.index}].${f}`,
    });
    if (hasFileBytes(h) && h.index !== 0) checkRange(h.offset, h.size, fileSize, w(24, 'sh_offset'));
    if (h.index !== 0 && h.link >= shnum)
      elfFail('ELF-BAD-LINK', `sh_link = ${h.link} is not a section (there are ${shnum})`, w(40, 'sh_link'));
    if (h.addralign > 1 && !Number.isInteger(Math.log2(h.addralign)))
      elfFail('ELF-BAD-ALIGN', `sh_addralign = ${h.addralign} is not a power of two`, w(48, 'sh_addralign'));
  }
  return headers;
}

/** The section-name table's header, checked to be a string table (undefined when there is none). */
function nameTableOf(
  headers: RawSectionHeader[],
  shstrndx: number,
  file?: string,
): RawSectionHeader | undefined {
  const sh = headers[shstrndx];
  if (!sh || shstrndx === 0) return undefined;
  if (sh.type !== SHT.STRTAB)
    elfFail('ELF-BAD-LINK', `e_shstrndx names section ${shstrndx}, which is not a string table`, {
      file,
      offset: sh.headerOffset + 4,
      field: `section[${shstrndx}].sh_type`,
    });
  return sh;
}

/** Give every header its name from the section-name table's bytes. */
function nameSections(headers: RawSectionHeader[], sh: RawSectionHeader, names: Buffer, file?: string): void {
  if (names.length > 0 && names[names.length - 1] !== 0)
    elfFail('ELF-STRTAB-UNTERMINATED', 'the section name table does not end with a NUL byte', {
      file,
      offset: sh.offset + sh.size - 1,
      field: `section[${sh.index}] (.shstrtab)`,
    });
  for (const h of headers)
    h.name = stringAt(
      names,
      h.nameOffset,
      { file, offset: h.headerOffset, field: `section[${h.index}].sh_name` },
      '.shstrtab',
    );
}

/** One read the header walk asks for: `length` bytes at file offset `offset` (within the file). */
export interface HeaderRead {
  offset: number;
  length: number;
}

/** The ELF header and the named section headers of a file. */
export interface ElfHeaders {
  header: ParsedElfHeader;
  sections: RawSectionHeader[];
  shstrndx: number;
}

/**
 * The header walk of a file of `fileSize` bytes: yields each read it needs and is sent its bytes (a
 * driver may return fewer at the end of the file; the checks catch it).
 */
export function* headerWalk(fileSize: number, file?: string): Generator<HeaderRead, ElfHeaders, Buffer> {
  const header = parseElfHeader(yield { offset: 0, length: Math.min(EHDR_SIZE, fileSize) }, fileSize, file);
  if (header.shoff === 0) return { header, sections: [], shstrndx: 0 };
  const first = yield { offset: header.shoff, length: SHDR_SIZE };
  const section0 = parseOneSectionHeader(first, 0, 0, header.shoff, file);
  const { shnum, shstrndx } = sectionCounts(header, section0, fileSize, file);
  const table = shnum === 0 ? Buffer.alloc(0) : yield { offset: header.shoff, length: shnum * SHDR_SIZE };
  const sections = parseSectionTable(table, header.shoff, shnum, fileSize, file);
  const sh = nameTableOf(sections, shstrndx, file);
  if (sh) nameSections(sections, sh, yield { offset: sh.offset, length: sh.size }, file);
  return { header, sections, shstrndx };
}

/** Run the header walk with a blocking reader. */
export function readHeadersSync(
  fileSize: number,
  read: (offset: number, length: number) => Buffer,
  file?: string,
): ElfHeaders {
  const walk = headerWalk(fileSize, file);
  let step = walk.next();
  while (!step.done) step = walk.next(read(step.value.offset, step.value.length));
  return step.value;
}

/** Run the header walk with an async reader. */
export async function readHeadersAsync(
  fileSize: number,
  read: (offset: number, length: number) => Promise<Buffer>,
  file?: string,
): Promise<ElfHeaders> {
  const walk = headerWalk(fileSize, file);
  let step = walk.next();
  while (!step.done) step = walk.next(await read(step.value.offset, step.value.length));
  return step.value;
}

/** Read the ELF header and section header table from a whole-file buffer. */
export function readHeaders(bytes: Uint8Array, file?: string): ElfHeaders {
  const b = asBuffer(bytes);
  return readHeadersSync(b.length, (offset, length) => b.subarray(offset, offset + length), file);
}

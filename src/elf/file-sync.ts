/*
 * The headers and a few sections of a large ELF file, read with blocking calls: ElfFile's reading, for a
 * one-shot job that needs a handful of reads (the symbol index: headers, .symtab, .strtab). Each async read
 * is a thread-pool round trip, which a busy machine can delay by milliseconds; a blocking pread is not.
 * The same checks as ElfFile.open, through the same parsers.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { checkRange, elfFail } from './bounds.js';
import { SHDR_SIZE } from './constants.js';
import {
  type ParsedElfHeader,
  parseElfHeader,
  parseSectionHeaders,
  type RawSectionHeader,
  sectionCounts,
} from './reader.js';

export interface SyncElfFile {
  path: string;
  size: number;
  header: ParsedElfHeader;
  sections: RawSectionHeader[];
  /** a section's contents (empty for NOBITS and NULL), bounds-checked */
  readSection(h: RawSectionHeader): Buffer;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** Open, read the headers, run `fn`, close. */
export function withElfFileSync<T>(path: string, fn: (f: SyncElfFile) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return elfFail(
      'ELF-UNREADABLE',
      `cannot open ${path}: ${err.code ?? err.message}`,
      { file: path, offset: 0, field: 'file' },
      'the file is missing or not readable',
      'check the path and permissions',
    );
  }
  try {
    const size = fstatSync(fd).size;
    const header = parseElfHeader(readAt(fd, 0, Math.min(64, size)), size, path);
    let sections: RawSectionHeader[] = [];
    if (header.shoff !== 0) {
      const s0 = readAt(fd, header.shoff, SHDR_SIZE);
      const section0 = parseSectionHeaders(s0, header.shoff, 1, 0, size, () => Buffer.alloc(0), path)[0];
      const { shnum, shstrndx } = sectionCounts(header, section0, size, path);
      const table = readAt(fd, header.shoff, shnum * SHDR_SIZE);
      const raw = parseSectionHeaders(table, header.shoff, shnum, 0, size, () => Buffer.alloc(0), path);
      const sh = raw[shstrndx];
      let names: Buffer = Buffer.alloc(0);
      if (sh && shstrndx !== 0) {
        checkRange(sh.offset, sh.size, size, {
          file: path,
          offset: sh.headerOffset + 24,
          field: `section[${shstrndx}].sh_offset`,
        });
        names = readAt(fd, sh.offset, sh.size);
      }
      sections = parseSectionHeaders(table, header.shoff, shnum, shstrndx, size, () => names, path);
    }
    return fn({
      path,
      size,
      header,
      sections,
      readSection(h) {
        if (h.type === 8 || h.type === 0) return Buffer.alloc(0);
        checkRange(h.offset, h.size, size, {
          file: path,
          offset: h.offset,
          field: `section[${h.index}] (${h.name})`,
        });
        return readAt(fd, h.offset, h.size);
      },
    });
  } finally {
    closeSync(fd);
  }
}

/*
 * The headers and a few sections of a large ELF file, read with blocking calls: ElfFile's reading, for a
 * one-shot job that needs a handful of reads (the symbol index: headers, .symtab, .strtab). Each async read
 * is a thread-pool round trip, which a busy machine can delay by milliseconds; a blocking pread is not.
 * The headers come from the same walk as ElfFile.open (headers.ts), driven with blocking reads.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { checkRange, unreadableFile } from './bounds.js';
import { hasFileBytes, type ParsedElfHeader, type RawSectionHeader, readHeadersSync } from './headers.js';

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
    return unreadableFile(path, 'open', e);
  }
  try {
    const size = fstatSync(fd).size;
    const { header, sections } = readHeadersSync(size, (offset, length) => readAt(fd, offset, length), path);
    return fn({
      path,
      size,
      header,
      sections,
      readSection(h) {
        if (!hasFileBytes(h)) return Buffer.alloc(0);
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

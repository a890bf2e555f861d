/*
 * ElfFile: an ELF file on disk read piecewise, for files too large to load (a 600 MB debug vmlinux).
 *
 * Opening reads only the ELF header, the section header table and the section-name string table.
 * Sections are then read one at a time, by offset, into buffers of their own size (`readSection`), so a
 * caller that needs .symtab and .strtab never touches the gigabytes of DWARF between them.
 */
import { readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { checkRange, elfFail } from './bounds.js';
import { SHDR_SIZE } from './constants.js';
import {
  type ParsedElfHeader,
  parseElfHeader,
  parseSectionHeaders,
  type RawSectionHeader,
  sectionCounts,
} from './reader.js';

export class ElfFile {
  private constructor(
    readonly path: string,
    readonly size: number,
    readonly header: ParsedElfHeader,
    readonly sections: RawSectionHeader[],
    private readonly fh: FileHandle,
  ) {}

  static async open(path: string): Promise<ElfFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
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
      const size = (await fh.stat()).size;
      const head = await readAt(fh, 0, Math.min(64, size));
      const header = parseElfHeader(head, size, path);
      let shnum = 0;
      let shstrndx = 0;
      let sections: RawSectionHeader[] = [];
      if (header.shoff !== 0) {
        const s0 = await readAt(fh, header.shoff, SHDR_SIZE);
        const section0 = parseSectionHeaders(s0, header.shoff, 1, 0, size, () => Buffer.alloc(0), path)[0];
        ({ shnum, shstrndx } = sectionCounts(header, section0, size, path));
        const table = await readAt(fh, header.shoff, shnum * SHDR_SIZE);
        // the name table is read once, on demand, inside parseSectionHeaders' callback (synchronously
        // we cannot read, so fetch it first from the raw header of shstrndx)
        const raw = parseSectionHeaders(table, header.shoff, shnum, 0, size, () => Buffer.alloc(0), path);
        const sh = raw[shstrndx];
        let names: Buffer = Buffer.alloc(0);
        if (sh && shstrndx !== 0) {
          checkRange(sh.offset, sh.size, size, {
            file: path,
            offset: sh.headerOffset + 24,
            field: `section[${shstrndx}].sh_offset`,
          });
          names = await readAt(fh, sh.offset, sh.size);
        }
        sections = parseSectionHeaders(table, header.shoff, shnum, shstrndx, size, () => names, path);
      }
      return new ElfFile(path, size, header, sections, fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Bytes [offset, offset+length) of the file, bounds-checked. */
  async read(offset: number, length: number, field: string): Promise<Buffer> {
    checkRange(offset, length, this.size, { file: this.path, offset, field });
    return readAt(this.fh, offset, length);
  }

  /** A section's contents (empty for NOBITS). */
  async readSection(h: RawSectionHeader): Promise<Buffer> {
    if (h.type === 8 || h.type === 0) return Buffer.alloc(0);
    return this.read(h.offset, h.size, `section[${h.index}] (${h.name})`);
  }

  /**
   * The same, read synchronously: for the few large reads of a one-shot index, a blocking read is
   * cheaper than a thread-pool round trip (which a busy machine can delay for many milliseconds).
   */
  readSectionSync(h: RawSectionHeader): Buffer {
    if (h.type === 8 || h.type === 0) return Buffer.alloc(0);
    checkRange(h.offset, h.size, this.size, {
      file: this.path,
      offset: h.offset,
      field: `section[${h.index}] (${h.name})`,
    });
    const buf = Buffer.allocUnsafe(h.size);
    let done = 0;
    while (done < h.size) {
      const n = readSync(this.fh.fd, buf, done, h.size - done, h.offset + done);
      if (n === 0) break;
      done += n;
    }
    return done === h.size ? buf : buf.subarray(0, done);
  }

  sectionByName(name: string): RawSectionHeader | undefined {
    return this.sections.find((s) => s.name === name);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** Open, use, close. */
export async function withElfFile<T>(path: string, fn: (f: ElfFile) => Promise<T>): Promise<T> {
  const f = await ElfFile.open(path);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/*
 * ElfFile: an ELF file on disk read piecewise, for files too large to load (a 600 MB debug vmlinux).
 *
 * Opening reads only the ELF header, the section header table and the section-name string table.
 * Sections are then read one at a time, by offset, into buffers of their own size (`readSection`), so a
 * caller that needs .symtab and .strtab never touches the gigabytes of DWARF between them. The headers
 * come from headers.ts's walk, the same one the blocking reader (file-sync.ts) and readElf use.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { checkRange, unreadableFile } from './bounds.js';
import { hasFileBytes, type ParsedElfHeader, type RawSectionHeader, readHeadersAsync } from './headers.js';

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
      return unreadableFile(path, 'open', e);
    }
    try {
      const size = (await fh.stat()).size;
      const read = (offset: number, length: number) => readAt(fh, offset, length);
      const { header, sections } = await readHeadersAsync(size, read, path);
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
    if (!hasFileBytes(h)) return Buffer.alloc(0);
    return this.read(h.offset, h.size, `section[${h.index}] (${h.name})`);
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

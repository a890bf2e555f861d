/*
 * newc cpio: the archive format the kernel unpacks into its initial root filesystem.
 *
 * Each entry is a 110-byte ASCII header ("070701" and thirteen 8-digit hex fields), the NUL-terminated
 * name padded to 4 bytes, then the data padded to 4 bytes; a "TRAILER!!!" entry ends the archive. The
 * kernel accepts several such archives concatenated (each optionally compressed), later entries
 * replacing earlier ones, which is what lets the VM initramfs be built from cached layers.
 *
 * The writer streams: file contents are read in chunks and fed through gzip, so a 100 MB Node binary
 * never sits in memory. Parent directories are emitted before their children (the kernel does not
 * create them), entries are in insertion order, mtimes and owners are fixed, so an archive is a pure
 * function of its inputs.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { fail } from '../diagnostic.js';

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; mode?: number; data: Buffer | string }
  /** a file copied from the host when the archive is written */
  | { kind: 'host-file'; path: string; mode?: number; from: string }
  | { kind: 'symlink'; path: string; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) fail('VM-CPIO-FIELD', `cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

/** The header and padded name of one entry. */
export function newcHeader(name: string, mode: number, size: number, ino: number, nlink: number): Buffer {
  const nameBuf = Buffer.from(`${name}\0`, 'utf8');
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, nameBuf.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([head, nameBuf, pad4(head.length + nameBuf.length)]);
}

/** Normalise an archive path: no leading slash, no `.`/`..` components. */
export function archivePath(p: string): string {
  const n = posix.normalize(`/${p}`).replace(/^\/+/, '');
  if (n === '' || n.startsWith('..')) fail('VM-CPIO-PATH', `not a path inside the VM: ${JSON.stringify(p)}`);
  return n;
}

/** An ordered set of entries; directories are added implicitly for every parent. */
export class CpioArchive {
  private readonly entries: CpioEntry[] = [];
  private readonly dirs = new Set<string>();

  dir(path: string, mode = 0o755): this {
    const p = archivePath(path);
    if (this.dirs.has(p)) return this;
    const parent = posix.dirname(p);
    if (parent !== '.') this.dir(parent);
    this.dirs.add(p);
    this.entries.push({ kind: 'dir', path: p, mode });
    return this;
  }

  private parents(p: string): string {
    const a = archivePath(p);
    const parent = posix.dirname(a);
    if (parent !== '.') this.dir(parent);
    return a;
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    this.entries.push({ kind: 'file', path: this.parents(path), data, mode });
    return this;
  }

  hostFile(path: string, from: string, mode?: number): this {
    this.entries.push({
      kind: 'host-file',
      path: this.parents(path),
      from,
      ...(mode === undefined ? {} : { mode }),
    });
    return this;
  }

  symlink(path: string, target: string): this {
    this.entries.push({ kind: 'symlink', path: this.parents(path), target });
    return this;
  }

  list(): readonly CpioEntry[] {
    return this.entries;
  }

  /** The archive as a stream of buffers (uncompressed newc). */
  async *chunks(): AsyncGenerator<Buffer> {
    let ino = 1;
    for (const e of this.entries) {
      ino++;
      if (e.kind === 'dir') {
        yield newcHeader(e.path, S_IFDIR | (e.mode ?? 0o755), 0, ino, 2);
      } else if (e.kind === 'symlink') {
        const t = Buffer.from(e.target, 'utf8');
        yield newcHeader(e.path, S_IFLNK | 0o777, t.length, ino, 1);
        yield Buffer.concat([t, pad4(t.length)]);
      } else if (e.kind === 'file') {
        const d = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data;
        yield newcHeader(e.path, S_IFREG | (e.mode ?? 0o644), d.length, ino, 1);
        yield Buffer.concat([d, pad4(d.length)]);
      } else {
        const st = await stat(e.from).catch(() =>
          fail('VM-FILE-MISSING', `cannot read ${e.from} for the VM image`, {
            location: { file: e.from },
            hint: 'check the path given to --add / files',
          }),
        );
        if (!st.isFile())
          fail('VM-FILE-KIND', `${e.from} is not a regular file`, { location: { file: e.from } });
        const mode = e.mode ?? st.mode & 0o7777;
        yield newcHeader(e.path, S_IFREG | mode, st.size, ino, 1);
        let n = 0;
        for await (const c of createReadStream(e.from)) {
          n += (c as Buffer).length;
          yield c as Buffer;
        }
        if (n !== st.size) fail('VM-FILE-CHANGED', `${e.from} changed size while being archived`);
        yield pad4(n);
      }
    }
    yield newcHeader('TRAILER!!!', 0, 0, 0, 1);
  }

  /** Write as gzip (level 1: the kernel unpacks it fast, we compress it fast) atomically to `dest`. */
  async writeGzip(dest: string): Promise<void> {
    return this.write(dest, true);
  }

  /** Write atomically to `dest`, gzip'd or plain newc. */
  async write(dest: string, gzip: boolean): Promise<void> {
    const tmp = `${dest}.${process.pid}.${Date.now()}.tmp`;
    try {
      if (gzip) await pipeline(this.chunks(), createGzip({ level: 1 }), createWriteStream(tmp));
      else await pipeline(this.chunks(), createWriteStream(tmp));
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}

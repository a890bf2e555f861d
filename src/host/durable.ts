/*
 * Durable small files: what the crash-loop guard writes must survive a power cut at any instant.
 *
 * A mark is written to a temporary file in the same directory, fsync'ed, renamed over its final name,
 * and the directory is fsync'ed, so after a crash the final name holds either nothing or the whole
 * mark. Removal fsyncs the directory too (a cleared mark must stay cleared).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The temporary name a durable write of `file` goes through (the guard treats it as a mark too). */
export function stagingName(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
}

export function writeDurably(file: string, data: string): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true });
  const tmp = stagingName(file);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    const buf = Buffer.from(data);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  syncDir(dir);
}

export function removeDurably(file: string): void {
  rmSync(file, { force: true });
  syncDir(dirname(file));
}

/*
 * The kernel log, read from /dev/kmsg, as a cursor: "what has the kernel said since I started?"
 *
 * When init_module fails, insmod only prints an errno ("Invalid parameters", "Unknown symbol in
 * module"); the reason is in the kernel log ("livepatch: symbol 'x' not found in symbol table").
 * The transition also narrates there ("'p': starting patching transition", "signaling remaining
 * tasks", "forcing remaining tasks to the patched state", "'p': patching complete"). /dev/kmsg
 * returns one record per read: `prio,seq,usec,flags;text`, followed by optional ` KEY=value` lines;
 * reading past the end fails with EAGAIN (opened non-blocking) and a record overwritten under us
 * fails once with EPIPE. In tests the same records come from a plain file.
 */
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import type { HostRoots } from './roots.js';

export interface KernelLogRecord {
  seq: number;
  /** microseconds since boot */
  usec: number;
  priority: number;
  text: string;
}

export function parseKmsg(chunk: string): KernelLogRecord[] {
  const out: KernelLogRecord[] = [];
  for (const line of chunk.split('\n')) {
    const m = /^(\d+),(\d+),(\d+),[^;]*;(.*)$/.exec(line);
    if (!m) continue; // continuation (" KEY=value") or partial line
    out.push({ priority: Number(m[1]) & 7, seq: Number(m[2]), usec: Number(m[3]), text: m[4] as string });
  }
  return out;
}

function readAll(path: string): KernelLogRecord[] {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return [];
  }
  const buf = Buffer.alloc(16384);
  const records: KernelLogRecord[] = [];
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // a record was overwritten; the next read resumes
        break; // EAGAIN: caught up
      }
      if (n <= 0) break;
      records.push(...parseKmsg(buf.toString('utf8', 0, n)));
    }
  } finally {
    closeSync(fd);
  }
  return records;
}

/** A position in the kernel log; `since()` returns the records logged after it and advances. */
export class KernelLogCursor {
  private lastSeq: number;
  constructor(private readonly path: string) {
    const all = readAll(path);
    this.lastSeq = all.length ? (all[all.length - 1] as KernelLogRecord).seq : -1;
  }
  static open(roots: HostRoots): KernelLogCursor {
    return new KernelLogCursor(roots.kmsg);
  }
  since(): KernelLogRecord[] {
    const fresh = readAll(this.path).filter((r) => r.seq > this.lastSeq);
    if (fresh.length) this.lastSeq = (fresh[fresh.length - 1] as KernelLogRecord).seq;
    return fresh;
  }
}

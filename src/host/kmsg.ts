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

/** Read every record available on `fd` now (non-blocking: stops at EAGAIN / end of file). */
function drain(fd: number): KernelLogRecord[] {
  const buf = Buffer.alloc(16384);
  const records: KernelLogRecord[] = [];
  let partial = '';
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
    // /dev/kmsg returns whole records; a plain file may split one across reads
    const text = partial + buf.toString('utf8', 0, n);
    const cut = text.lastIndexOf('\n');
    partial = cut < 0 ? text : text.slice(cut + 1);
    records.push(...parseKmsg(cut < 0 ? '' : text.slice(0, cut)));
  }
  if (partial) records.push(...parseKmsg(partial));
  return records;
}

/**
 * A position in the kernel log: `since()` returns the records logged after the previous call (or
 * after the cursor was opened) and advances. Keeps the log open; `close()` when done. A machine
 * without a readable log (no /dev/kmsg, not root) gives an empty cursor, never an error.
 */
export class KernelLogCursor {
  private fd: number | undefined;
  private constructor(path: string) {
    try {
      this.fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      drain(this.fd);
    } catch {
      this.fd = undefined;
    }
  }
  static open(roots: HostRoots): KernelLogCursor {
    return new KernelLogCursor(roots.kmsg);
  }
  since(): KernelLogRecord[] {
    return this.fd === undefined ? [] : drain(this.fd);
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/*
 * The running kernel's identity: its release (`uname -r`) and the GNU build id of its vmlinux.
 *
 * A livepatch is only ever loaded onto the exact build it was made for. The release comes from
 * /proc/sys/kernel/osrelease; the build id from /sys/kernel/notes, which exposes the vmlinux's ELF
 * note section verbatim: a sequence of (namesz, descsz, type, name, desc) records, each field padded
 * to 4 bytes. The build id is the descriptor of the note named "GNU" with type NT_GNU_BUILD_ID (3).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';
import type { HostRoots } from './roots.js';

export interface RunningKernel {
  release: string;
  /** lowercase hex, as in the manifest's kernel.buildId; undefined if the kernel exposes no notes */
  buildId: string | undefined;
}

const NT_GNU_BUILD_ID = 3;
const align4 = (n: number) => (n + 3) & ~3;

/** Parse an ELF note blob (as in /sys/kernel/notes) and return the GNU build id, if any. */
/** Whether a patch built for `built` (a manifest's kernel) is for this running kernel: release and build id. */
export function builtFor(built: { release: string; buildId: string }, kernel: RunningKernel): boolean {
  return built.release === kernel.release && built.buildId === kernel.buildId;
}

export function parseBuildIdNote(notes: Uint8Array, where = '/sys/kernel/notes'): string | undefined {
  const view = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  let off = 0;
  while (off + 12 <= notes.byteLength) {
    const namesz = view.getUint32(off, true);
    const descsz = view.getUint32(off + 4, true);
    const type = view.getUint32(off + 8, true);
    const nameOff = off + 12;
    const descOff = nameOff + align4(namesz);
    const next = descOff + align4(descsz);
    if (descOff + descsz > notes.byteLength || namesz > 4096 || descsz > 4096) {
      throw new SutureError({
        code: 'HOST-NOTES-TRUNCATED',
        message: `ELF note at byte ${off} runs past the end of ${where} (${notes.byteLength} bytes)`,
        location: { file: where, offset: off },
        why: 'the build id cannot be read, so no livepatch can be matched to this kernel',
        hint: 'check that sysfs is mounted and that this is a Linux kernel exposing its notes',
      });
    }
    // name is NUL-terminated: "GNU\0" has namesz 4
    const name = Buffer.from(notes.subarray(nameOff, nameOff + Math.max(0, namesz - 1))).toString('latin1');
    if (name === 'GNU' && type === NT_GNU_BUILD_ID) {
      return Buffer.from(notes.subarray(descOff, descOff + descsz)).toString('hex');
    }
    off = next;
  }
  return undefined;
}

export function runningKernel(roots: HostRoots): RunningKernel {
  const osrelease = join(roots.proc, 'sys/kernel/osrelease');
  let release: string;
  try {
    release = readFileSync(osrelease, 'utf8').trim();
  } catch (e) {
    throw new SutureError({
      code: 'HOST-NO-PROCFS',
      message: `cannot read the running kernel's release from ${osrelease}: ${(e as Error).message}`,
      location: { file: osrelease },
      hint: 'run on a Linux host with /proc mounted',
    });
  }
  let notes: Buffer | undefined;
  try {
    notes = readFileSync(join(roots.sys, 'kernel/notes'));
  } catch {
    notes = undefined;
  }
  return { release, buildId: notes ? parseBuildIdNote(notes, join(roots.sys, 'kernel/notes')) : undefined };
}

/** Build an ELF note blob holding one GNU build id (tests use it to fake /sys/kernel/notes). */
export function encodeBuildIdNote(buildIdHex: string): Buffer {
  const desc = Buffer.from(buildIdHex, 'hex');
  const head = Buffer.alloc(12);
  head.writeUInt32LE(4, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(NT_GNU_BUILD_ID, 8);
  // a Xen note first, as on real kernels, to prove we walk the list
  const xen = Buffer.alloc(12 + 4 + 4);
  xen.writeUInt32LE(4, 0);
  xen.writeUInt32LE(4, 4);
  xen.writeUInt32LE(6, 8);
  xen.write('Xen\0', 12, 'latin1');
  const pad = Buffer.alloc(align4(desc.length) - desc.length);
  return Buffer.concat([xen, head, Buffer.from('GNU\0', 'latin1'), desc, pad]);
}

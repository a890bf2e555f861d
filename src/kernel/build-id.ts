/*
 * The GNU build id of a kernel image: the identity a livepatch is bound to.
 *
 * The linker stores a 20-byte hash in an ELF note (owner "GNU", type NT_GNU_BUILD_ID = 3); the running
 * kernel exposes the same note in /sys/kernel/notes. This reader walks only the ELF header, the section
 * headers and the note sections, with every offset bounds-checked, so it reads a few KiB of a 500 MB
 * debug vmlinux.
 *
 * TODO(elf): switch to the ELF engine's readBuildId (src/elf/) once it lands; this is the minimal
 * bounded reader the kernel layer needs until then.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { fail } from '../diagnostic.js';

const SHT_NOTE = 7;
const NT_GNU_BUILD_ID = 3;

function readAt(
  fd: number,
  file: string,
  offset: number,
  length: number,
  fileSize: number,
  field: string,
): Buffer {
  if (offset < 0 || length < 0 || offset + length > fileSize) {
    fail('ELF-TRUNCATED', `${field} points outside the file`, {
      location: { file, offset, field },
      why: `it needs bytes ${offset}..${offset + length} of a ${fileSize}-byte file`,
      hint: 'the file is truncated or not an ELF image: fetch the kernel again',
    });
  }
  const b = Buffer.alloc(length);
  const n = readSync(fd, b, 0, length, offset);
  if (n !== length) fail('ELF-TRUNCATED', `short read of ${field}`, { location: { file, offset, field } });
  return b;
}

/** Parse the notes in `buf` and return the GNU build id as hex, if present. */
export function buildIdFromNotes(buf: Buffer, align = 4): string | undefined {
  let p = 0;
  const pad = (n: number) => (n + align - 1) & ~(align - 1);
  while (p + 12 <= buf.length) {
    const namesz = buf.readUInt32LE(p);
    const descsz = buf.readUInt32LE(p + 4);
    const type = buf.readUInt32LE(p + 8);
    const nameOff = p + 12;
    const descOff = nameOff + pad(namesz);
    if (descOff + descsz > buf.length) return undefined;
    const name = buf
      .subarray(nameOff, nameOff + namesz)
      .toString('latin1')
      .replace(/\0+$/, '');
    if (name === 'GNU' && type === NT_GNU_BUILD_ID)
      return buf.subarray(descOff, descOff + descsz).toString('hex');
    p = descOff + pad(descsz);
  }
  return undefined;
}

/** GNU build id (lower-case hex) of the ELF64 little-endian file at `file`. */
export function readBuildId(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const eh = readAt(fd, file, 0, 64, size, 'ELF header');
    if (eh.readUInt32BE(0) !== 0x7f454c46)
      fail('ELF-NOT-ELF', `${file} is not an ELF file`, { location: { file } });
    if (eh[4] !== 2 || eh[5] !== 1) {
      fail('ELF-UNSUPPORTED', `${file} is not ELF64 little-endian`, { location: { file, field: 'e_ident' } });
    }
    const shoff = Number(eh.readBigUInt64LE(0x28));
    const shentsize = eh.readUInt16LE(0x3a);
    const shnum = eh.readUInt16LE(0x3c);
    if (shentsize < 64)
      fail('ELF-BAD-HEADER', `e_shentsize ${shentsize} < 64`, { location: { file, field: 'e_shentsize' } });
    const sh = readAt(fd, file, shoff, shentsize * shnum, size, 'e_shoff');
    for (let i = 0; i < shnum; i++) {
      const o = i * shentsize;
      if (sh.readUInt32LE(o + 4) !== SHT_NOTE) continue;
      const off = Number(sh.readBigUInt64LE(o + 0x18));
      const len = Number(sh.readBigUInt64LE(o + 0x20));
      const align = Number(sh.readBigUInt64LE(o + 0x30));
      if (len > 1 << 20) continue; // notes are small; do not read a huge bogus section
      const notes = readAt(fd, file, off, len, size, `section[${i}].sh_offset`);
      const id = buildIdFromNotes(notes, align === 8 ? 8 : 4);
      if (id) return id;
    }
    return fail('KERNEL-NO-BUILD-ID', `${file} carries no GNU build id note`, {
      location: { file },
      why: 'Suture binds every livepatch to the exact build id of the kernel it was made for',
      hint: 'use the vmlinux from the matching -dbg package',
    });
  } finally {
    closeSync(fd);
  }
}

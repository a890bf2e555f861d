/*
 * ELF notes: the records of a SHT_NOTE section (name, type, descriptor), as the GNU build id is stored.
 * Bounds-checked like everything read from a file: a note running past its section is ELF-TRUNCATED.
 */
import { elfFail, type Where } from './bounds.js';
import type { ElfNote } from './model.js';

/** Parse the notes in a SHT_NOTE section's bytes (`base` = file offset of `data`). */
export function parseNotes(
  data: Buffer,
  base: number,
  align: number,
  field: string,
  file?: string,
): ElfNote[] {
  const a = align === 8 ? 8 : 4;
  const pad = (n: number) => (n + a - 1) & ~(a - 1);
  const notes: ElfNote[] = [];
  let p = 0;
  while (p < data.length) {
    const w: Where = { file, offset: base + p, field: `${field} note at +${p}` };
    if (p + 12 > data.length) elfFail('ELF-TRUNCATED', 'a note header runs past the end of its section', w);
    const namesz = data.readUInt32LE(p);
    const descsz = data.readUInt32LE(p + 4);
    const type = data.readUInt32LE(p + 8);
    const nameStart = p + 12;
    // padding counts from the note's start: with 8-byte alignment (.note.gnu.property) desc is at +16
    const descStart = p + pad(12 + namesz);
    const end = descStart + pad(descsz);
    if (nameStart + namesz > data.length || descStart + descsz > data.length)
      elfFail(
        'ELF-TRUNCATED',
        `a note (namesz ${namesz}, descsz ${descsz}) runs past the end of its section`,
        w,
      );
    let nameEnd = nameStart + namesz;
    if (namesz > 0 && data[nameEnd - 1] === 0) nameEnd--;
    notes.push({
      name: data.toString('latin1', nameStart, nameEnd),
      type,
      desc: data.subarray(descStart, descStart + descsz),
      offset: base + p,
    });
    p = Math.min(end, data.length);
  }
  return notes;
}

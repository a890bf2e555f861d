/*
 * The GNU build id (NT_GNU_BUILD_ID note) of an ELF file: the identity of a kernel build.
 *
 * Suture never loads a patch onto a kernel it was not built for; the build id is how that is checked.
 * Reading it touches only the headers and the note sections (a few hundred bytes of a 600 MB vmlinux).
 */
import { elfFail } from './bounds.js';
import { NT_GNU_BUILD_ID, SHT } from './constants.js';
import { withElfFile } from './file.js';
import type { ElfObject } from './model.js';
import { parseNotes } from './notes.js';

/** The build id as lowercase hex, or ELF-NO-BUILD-ID if the file has none. */
export async function readBuildId(path: string): Promise<string> {
  return withElfFile(path, async (f) => {
    for (const h of f.sections) {
      if (h.type !== SHT.NOTE) continue;
      const data = await f.readSection(h);
      for (const n of parseNotes(data, h.offset, h.addralign, `section[${h.index}] (${h.name})`, path))
        if (n.name === 'GNU' && n.type === NT_GNU_BUILD_ID) return Buffer.from(n.desc).toString('hex');
    }
    return elfFail(
      'ELF-NO-BUILD-ID',
      `${path} has no GNU build id note`,
      { file: path, offset: 0, field: 'SHT_NOTE sections' },
      'the file was linked without --build-id, or its notes were stripped',
      'use the unstripped vmlinux or module from the same build',
    );
  });
}

/** The build id of an already-parsed object, or undefined. */
export function buildIdOf(obj: ElfObject): string | undefined {
  for (const s of obj.sections)
    for (const n of s.notes ?? [])
      if (n.name === 'GNU' && n.type === NT_GNU_BUILD_ID) return Buffer.from(n.desc).toString('hex');
  return undefined;
}

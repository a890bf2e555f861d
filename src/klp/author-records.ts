/*
 * The records the author macros leave in a patched object (src/klp/include/suture/author.h): section
 * `.suture.records`, an array of 192-byte `struct suture_record` — an address (never read here), the
 * kind, the macro's line, the object the unit belongs to and a symbol name. They are plain bytes, read
 * with bounds checks; a section that is not a whole number of records is KLP-BAD-RECORDS.
 *
 * Callback records name the global trampoline that the generated registration puts in the
 * klp_object's callbacks; ignore records name a function or section the object diff leaves out;
 * force-unsafe records are only recorded (the consistency model always applies).
 */
import { fail } from '../diagnostic.js';
import type { ElfObject } from '../elf/model.js';

export const RECORDS_SECTION = '.suture.records';
const RECORD_SIZE = 192;
const OBJECT_AT = 16;
const OBJECT_LEN = 56;
const SYMBOL_AT = OBJECT_AT + OBJECT_LEN;
const SYMBOL_LEN = 120;

export const CALLBACK_KINDS = ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch'] as const;
export type CallbackKind = (typeof CALLBACK_KINDS)[number];

export type AuthorRecord =
  | { kind: 'callback'; callback: CallbackKind; line: number; object: string; symbol: string }
  | {
      kind: 'ignore-function' | 'ignore-section' | 'force-unsafe';
      line: number;
      object: string;
      symbol: string;
    };

/** A NUL-terminated string of at most `len` bytes at `at`. */
function cString(data: Uint8Array, at: number, len: number): string {
  const field = data.subarray(at, at + len);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

/** Every record of the patched object, by line (none when it has no `.suture.records`). */
export function readAuthorRecords(obj: ElfObject, file = obj.file ?? 'the patched object'): AuthorRecord[] {
  const sec = obj.section(RECORDS_SECTION);
  if (!sec) return [];
  const data = sec.data;
  if (data.length % RECORD_SIZE !== 0)
    fail(
      'KLP-BAD-RECORDS',
      `${RECORDS_SECTION} of ${file} is ${data.length} bytes, not records of ${RECORD_SIZE}`,
      {
        location: { file, section: RECORDS_SECTION },
        why: 'the section is written by the macros of src/klp/include/suture/author.h, whose layout suture reads',
        hint: 'include kpatch-macros.h or linux/livepatch_helpers.h as shipped with this suture, and do not define the section yourself',
      },
    );
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: AuthorRecord[] = [];
  for (let at = 0; at < data.length; at += RECORD_SIZE) {
    const code = view.getUint32(at + 8, true);
    const line = view.getUint32(at + 12, true);
    const object = cString(data, at + OBJECT_AT, OBJECT_LEN);
    const symbol = cString(data, at + SYMBOL_AT, SYMBOL_LEN);
    const callback = CALLBACK_KINDS[code - 1];
    if (callback) out.push({ kind: 'callback', callback, line, object, symbol });
    else if (code === 5) out.push({ kind: 'ignore-function', line, object, symbol });
    else if (code === 6) out.push({ kind: 'ignore-section', line, object, symbol });
    else if (code === 7) out.push({ kind: 'force-unsafe', line, object, symbol });
    else
      fail(
        'KLP-BAD-RECORDS',
        `record ${at / RECORD_SIZE} of ${RECORDS_SECTION} in ${file} has unknown kind ${code}`,
        {
          location: { file, section: RECORDS_SECTION },
          why: 'only the macros of suture/author.h write this section',
          hint: 'include the author headers as shipped with this suture',
        },
      );
  }
  // gcc emits a section's variables last first: the source order is the line order
  return out.sort((a, b) => a.line - b.line);
}

/** What the object diff must leave out: functions and sections named by ignore records. */
export function ignoredByAuthor(records: readonly AuthorRecord[]): {
  functions: Set<string>;
  sections: Set<string>;
} {
  return {
    functions: new Set(records.filter((r) => r.kind === 'ignore-function').map((r) => r.symbol)),
    sections: new Set(records.filter((r) => r.kind === 'ignore-section').map((r) => r.symbol)),
  };
}

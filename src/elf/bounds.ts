/*
 * Bounds: every number read from an ELF file is checked before it is used.
 *
 * Offsets, sizes and counts come from untrusted bytes. Each check here either returns the value as a
 * safe JS number or throws a SutureError whose code says what kind of damage it is (ELF-TRUNCATED,
 * ELF-BAD-OFFSET, ELF-BAD-COUNT ...) and whose location names the field and the byte offset of the field
 * in the file, so `suture elf` on a broken file points at the broken byte.
 */
import { fail } from '../diagnostic.js';

export interface Where {
  file: string | undefined;
  /** byte offset of the field (or record) in the file */
  offset: number;
  /** the field, e.g. `e_shoff`, `section[12].sh_link` */
  field: string;
}

export function elfFail(code: string, message: string, where: Where, why?: string, hint?: string): never {
  const location: { file?: string; offset: number; field: string } = {
    offset: where.offset,
    field: where.field,
  };
  if (where.file !== undefined) location.file = where.file;
  fail(code, message, {
    location,
    why:
      why ?? 'the ELF file is damaged, truncated, or not a file this tool reads (ELF64 little-endian x86-64)',
    hint: hint ?? 'check the file with `readelf -aW`; rebuild or re-download it if it is damaged',
  });
}

/** A 64-bit field as a safe JS number (sizes, offsets), or ELF-BAD-SIZE. */
export function safeNumber(v: bigint, where: Where): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    elfFail('ELF-BAD-SIZE', `${where.field} = 0x${v.toString(16)} is too large`, where);
  return Number(v);
}

/** [offset, offset+size) must lie inside a file of `fileSize` bytes. */
export function checkRange(offset: number, size: number, fileSize: number, where: Where): void {
  if (offset > fileSize)
    elfFail(
      'ELF-BAD-OFFSET',
      `${where.field} points at 0x${offset.toString(16)}, past the end of the file (0x${fileSize.toString(16)} bytes)`,
      where,
    );
  if (offset + size > fileSize)
    elfFail(
      'ELF-TRUNCATED',
      `${where.field}: 0x${size.toString(16)} bytes at 0x${offset.toString(16)} run past the end of the file (0x${fileSize.toString(16)} bytes)`,
      where,
    );
}

/** A NUL-terminated string at `start` inside the string table `table` (a Buffer slice). */
export function stringAt(table: Buffer, start: number, where: Where, tableName: string): string {
  if (start >= table.length) {
    if (start === 0) return '';
    elfFail(
      'ELF-BAD-NAME',
      `${where.field} = ${start} is outside ${tableName} (${table.length} bytes)`,
      where,
      'a name offset must point inside its string table',
    );
  }
  const end = table.indexOf(0, start);
  if (end < 0)
    elfFail(
      'ELF-STRTAB-UNTERMINATED',
      `the string at ${start} in ${tableName} has no terminating NUL`,
      where,
      'every string table must end with a NUL byte',
    );
  return table.toString('latin1', start, end);
}

/** The file itself could not be opened or read (ELF-UNREADABLE), with the system's reason. */
export function unreadableFile(path: string, action: 'open' | 'read', e: unknown): never {
  const err = e as NodeJS.ErrnoException;
  return elfFail(
    'ELF-UNREADABLE',
    `cannot ${action} ${path}: ${err.code ?? err.message}`,
    { file: path, offset: 0, field: 'file' },
    'the file is missing or not readable',
    'check the path and permissions',
  );
}

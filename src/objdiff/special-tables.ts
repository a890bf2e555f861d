/*
 * The special tables the diff object splits per entry: tables of fixed-size entries whose first field
 * points at the code the entry is about, and the size of an entry in each.
 *
 * Sizes differ between kernels (`struct alt_instr` is 12 bytes on 6.1 and 14 on 6.12), so they are not a
 * constant: `tableSizesFromStructs` reads them from the target kernel's own types (kernel-tables.ts gets
 * those from its vmlinux), `withTableEntries` sets them by hand (`suture objdiff --table-entry`). The
 * defaults are those of x86-64 6.1, for objects of no known kernel.
 */
import { fail } from '../diagnostic.js';

/** Section → entry size in bytes. `.orc_unwind` is listed too: it parallels `.orc_unwind_ip`. */
export type TableSizes = Readonly<Record<string, number>>;

/** Tables whose entries are plain 32-bit offsets or 64-bit addresses on every kernel. */
const FIXED: TableSizes = {
  __mcount_loc: 8,
  __patchable_function_entries: 8,
  '.return_sites': 4,
  '.retpoline_sites': 4,
  '.call_sites': 4,
  '.ibt_endbr_seal': 4,
  '.kcfi_traps': 4,
  '.orc_unwind_ip': 4,
  /** lock prefixes patched away on UP (s32 each) */
  '.smp_locks': 4,
};

/** Tables of structs: section → the kernel's struct describing one entry. */
export const TABLE_STRUCTS: Readonly<Record<string, string>> = {
  __ex_table: 'exception_table_entry',
  __bug_table: 'bug_entry',
  __jump_table: 'jump_entry',
  '.altinstructions': 'alt_instr',
  '.static_call_sites': 'static_call_site',
  '.orc_unwind': 'orc_entry',
  '.parainstructions': 'paravirt_patch_site',
};

/** x86-64 6.1's sizes, for objects of no known kernel. */
export const DEFAULT_TABLE_SIZES: TableSizes = {
  ...FIXED,
  '.static_call_sites': 8,
  __ex_table: 12,
  __bug_table: 12,
  __jump_table: 16,
  '.altinstructions': 12,
  '.orc_unwind': 6,
  /** struct paravirt_patch_site { u8 *instr; u8 type; u8 len; } — 16 bytes with padding */
  '.parainstructions': 16,
};

/** The sizes of a kernel whose struct sizes are known (by struct name); a struct it lacks keeps the default. */
export function tableSizesFromStructs(sizeOf: (struct: string) => number | undefined): TableSizes {
  const out: Record<string, number> = { ...DEFAULT_TABLE_SIZES };
  for (const [section, struct] of Object.entries(TABLE_STRUCTS)) {
    const size = sizeOf(struct);
    if (size !== undefined && size > 0) out[section] = size;
  }
  return out;
}

/** Whether `section` is a table split per entry (`.orc_unwind` follows `.orc_unwind_ip`, never on its own). */
export function isSplitTable(sizes: TableSizes, section: string): boolean {
  return section !== '.orc_unwind' && sizes[section] !== undefined;
}

/**
 * `SECTION=BYTES` settings (`--table-entry __bug_table=16`) on top of `base`. Only known tables can be
 * set: an entry of any other table is refused per entry, never split by a guessed size.
 */
export function withTableEntries(base: TableSizes, settings: readonly string[]): TableSizes {
  const out: Record<string, number> = { ...base };
  for (const s of settings) {
    const m = /^([^=\s]+)=(\d{1,4})$/.exec(s);
    const bytes = m ? Number(m[2]) : 0;
    if (!m || out[m[1]!] === undefined || bytes < 1 || bytes > 4096)
      fail('OBJDIFF-BAD-TABLE-ENTRY', `bad table entry setting \`${s}\``, {
        why: 'expected SECTION=BYTES for a table split per entry, BYTES between 1 and 4096',
        hint: `known tables: ${Object.keys(out).join(', ')}`,
      });
    out[m[1]!] = bytes;
  }
  return out;
}

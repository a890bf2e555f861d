/*
 * The special tables the diff object splits per entry: tables of fixed-size entries whose first field
 * points at the code the entry is about, with the entry sizes of this kernel (x86-64, 6.1).
 */

/** Tables of fixed-size entries whose first field points at the code the entry is about. */
export const SPECIAL_TABLES: Readonly<Record<string, number>> = {
  __mcount_loc: 8,
  __patchable_function_entries: 8,
  '.return_sites': 4,
  '.retpoline_sites': 4,
  '.call_sites': 4,
  '.ibt_endbr_seal': 4,
  '.kcfi_traps': 4,
  '.static_call_sites': 8,
  __ex_table: 12,
  __bug_table: 12,
  __jump_table: 16,
  '.altinstructions': 12,
  '.orc_unwind_ip': 4,
  /** lock prefixes patched away on UP (s32 each) */
  '.smp_locks': 4,
  /** struct paravirt_patch_site { u8 *instr; u8 type; u8 len; } — 16 bytes with padding */
  '.parainstructions': 16,
};

/** `.orc_unwind` has no relocations: its entries (6 bytes) parallel those of `.orc_unwind_ip`. */
export const ORC_ENTRY = 6;

/*
 * Rule OBJDIFF-TABLE-LAYOUT: a special table whose layout is not the one Suture knows.
 *
 * The diff object keeps the entries of special tables (`__ex_table`, `.altinstructions`, ...) that belong
 * to carried functions, which needs each table to be a whole number of entries of the size the target
 * kernel uses (read from its vmlinux's BTF: objdiff/kernel-tables.ts), and `.orc_unwind` to hold one entry per `.orc_unwind_ip` entry. Otherwise the table cannot be split
 * safely.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const tableLayout: Rule = {
  id: 'OBJDIFF-TABLE-LAYOUT',
  title: 'a special table that is not a whole number of known entries',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.tableLayouts.map((t) =>
      t.kind === 'entry-size'
        ? {
            severity: 'error' as const,
            code: this.id,
            message: `${t.table} is ${t.size} bytes, not a whole number of ${t.entrySize}-byte entries`,
            location: { file: facts.patched.file, section: t.table },
            why: 'the entry size this table was split with is not the one the objects were built with',
            hint: 'diff with the target kernel`s own sizes (`suture objdiff --kernel RELEASE`, read from its vmlinux) or set them (`--table-entry SECTION=BYTES`)',
          }
        : {
            severity: 'error' as const,
            code: this.id,
            message: `.orc_unwind (${t.orcSize} bytes) does not match .orc_unwind_ip (${t.orcIpSize} bytes)`,
            location: { file: facts.patched.file, section: '.orc_unwind' },
            why: 'ORC unwind entries come in pairs; without the pair the unwinder cannot walk through the patched code',
            hint: 'rebuild the objects with the kernel’s objtool (kbuild does this)',
          },
    );
  },
};

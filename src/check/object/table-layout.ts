/*
 * Rule OBJDIFF-TABLE-LAYOUT: a special table whose layout is not the one Suture knows.
 *
 * The diff object keeps the entries of special tables (`__ex_table`, `.altinstructions`, ...) that belong
 * to carried functions, which needs each table to be a whole number of entries of the size this kernel
 * uses, and `.orc_unwind` to hold one entry per `.orc_unwind_ip` entry. Otherwise the table cannot be split
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
            why: 'the entry layout of this table differs from what Suture knows for this kernel',
            hint: 'report the kernel version; the table cannot be split safely',
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

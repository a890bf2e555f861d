/*
 * Rule OBJDIFF-NEW-SPECIAL-OBJECT: carried code uses a new object of a kernel table that cannot be carried.
 *
 * A new pr_debug descriptor (`_ddebug` in `__dyndbg`) is carried in the livepatch module's own table,
 * which the module loader registers (objdiff/descriptors.ts), so it never reaches this rule. Other new
 * objects of kernel tables are defined in the patched object, are not program data and have no twin in
 * the original: a new tracepoint (`__tracepoints`, whose callers elsewhere in the kernel would never
 * see it), a new dynamic-debug class map (`__dyndbg_classes`), anything in a table the kernel only knows
 * how to register from vmlinux or the module that defines it.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const newSpecialObject: Rule = {
  id: 'OBJDIFF-NEW-SPECIAL-OBJECT',
  title:
    'a new object of a kernel table other than a pr_debug descriptor (a new tracepoint, a class map) used by carried code',
  check(facts: ObjectFacts): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const [sym, ref] of facts.references) {
      if (!ref.twinless || !sym.section) continue;
      out.push({
        severity: 'error',
        code: this.id,
        message: `new \`${sym.name}\` in section ${sym.section.name} cannot be carried`,
        location: { file: facts.patched.file, section: sym.section.name, symbol: sym.name },
        why: `the patched code uses a new object of the kernel table ${sym.section.name} (for example a new tracepoint or dynamic-debug class map); the running kernel has no such object and registers that table only from the object that defines it`,
        hint: 'use what the running kernel already has (an existing tracepoint, a pr_debug: new pr_debug sites are carried), or ship the new table object in a kernel update',
      });
    }
    return out;
  },
};

/*
 * Rule OBJDIFF-NEW-SPECIAL-OBJECT: carried code uses a new object of a kernel table.
 *
 * A new pr_debug descriptor, a new tracepoint site: defined in the patched object, not program data, and
 * with no twin in the original. The running kernel has no such object to reference, and the table is
 * registered as a whole, so the diff object cannot carry one entry of it on its own.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const newSpecialObject: Rule = {
  id: 'OBJDIFF-NEW-SPECIAL-OBJECT',
  title: 'a new object of a kernel table (a new pr_debug or tracepoint site) used by carried code',
  check(facts: ObjectFacts): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const [sym, ref] of facts.references) {
      if (!ref.twinless || !sym.section) continue;
      out.push({
        severity: 'error',
        code: this.id,
        message: `new \`${sym.name}\` in section ${sym.section.name} cannot be carried`,
        location: { file: facts.patched.file, section: sym.section.name, symbol: sym.name },
        why: 'the patched code uses a new object of a kernel table (for example a new pr_debug or tracepoint site); the running kernel has no such object and the table is registered as a whole',
        hint: 'avoid adding the table entry in the livepatch (e.g. use pr_info instead of a new pr_debug)',
      });
    }
    return out;
  },
};

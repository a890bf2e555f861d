/*
 * Rule KLP-SPECIAL-SECTION: every special-section entry of a carried function must be carried too.
 *
 * The kernel keeps facts about code in tables outside it: exception fixups (`__ex_table`), BUG/WARN
 * sites (`__bug_table`), alternatives, jump labels, static calls, return thunks, ORC unwind data. The
 * diff object carries the entries that belong to the functions it carries. An entry in a table Suture
 * does not know how to split would be dropped silently — a missing exception fixup is an oops waiting
 * to happen — so it is refused instead. Only addresses inside a function's body count: a pointer to a
 * function's entry (an ops structure in a named section) keeps working through ftrace.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const specialEntry: Rule = {
  id: 'KLP-SPECIAL-SECTION',
  title: 'special-section entry that cannot be carried',
  check(facts: ObjectFacts): Diagnostic[] {
    const bySection = new Map<string, Set<string>>();
    for (const e of facts.uncarried) {
      const s = bySection.get(e.section) ?? new Set<string>();
      s.add(e.function);
      bySection.set(e.section, s);
    }
    return [...bySection].map(([section, fns]) => ({
      severity: 'error' as const,
      code: this.id,
      message: `section \`${section}\` has entries for ${[...fns].map((f) => `\`${f}\``).join(', ')} that the livepatch cannot carry`,
      location: { file: facts.patchedPath, section },
      why: 'Suture does not know the entry layout of this section, and dropping the entries could break the patched code',
      hint: 'report the section name so its layout can be added; until then this change cannot be livepatched by Suture',
    }));
  },
};

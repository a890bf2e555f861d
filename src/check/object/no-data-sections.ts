/*
 * Rule OBJDIFF-NO-DATA-SECTIONS: a new variable shares its section with variables left behind.
 *
 * A new static variable is carried in the diff object, and the diff object carries whole sections:
 * copying a section shared with existing variables would duplicate them (`-fdata-sections` gives each
 * its own).
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const noDataSections: Rule = {
  id: 'OBJDIFF-NO-DATA-SECTIONS',
  title: 'a new variable sharing its section with existing ones',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.data
      .filter((d) => d.sharesSectionWith?.length)
      .map((d) => {
        const sec = d.symbol.section?.name ?? '';
        return {
          severity: 'error' as const,
          code: this.id,
          message: `new variable \`${d.name}\` shares section ${sec} with ${d.sharesSectionWith!.join(', ')}`,
          location: { file: facts.patched.file, section: sec, symbol: d.name },
          why: 'a new variable can only be carried alone: copying its section would duplicate the existing ones',
          hint: 'compile the original and patched objects with -ffunction-sections -fdata-sections',
        };
      });
  },
};

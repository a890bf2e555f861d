/*
 * Rule OBJDIFF-NO-FUNCTION-SECTIONS: a carried function shares its section with functions left behind.
 *
 * The diff object carries whole sections. A changed function can only be cut out of an object compiled
 * with one section per function (`-ffunction-sections`); otherwise copying its section would carry, and
 * duplicate, every other function in it.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const noFunctionSections: Rule = {
  id: 'OBJDIFF-NO-FUNCTION-SECTIONS',
  title: 'a carried function sharing its section with other functions',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.functions
      .filter((f) => f.sharesSectionWith?.length)
      .map((f) => {
        const sec = f.symbol.section?.name ?? '';
        return {
          severity: 'error' as const,
          code: this.id,
          message: `function \`${f.name}\` shares section ${sec} with ${f.sharesSectionWith!.join(', ')}`,
          location: { file: facts.patched.file, section: sec, symbol: f.name },
          why: 'a changed function can only be cut out of an object compiled with one section per function',
          hint: 'compile the original and patched objects with -ffunction-sections -fdata-sections',
        };
      });
  },
};

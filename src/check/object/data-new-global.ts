/*
 * Rule KLP-DATA-NEW-GLOBAL: a patch may not introduce a new global variable.
 *
 * A new static variable is private to the functions the patch carries, so it can live in the patch
 * module (it starts from its initializer when the patch loads). A new global variable is meant to be
 * shared with code outside the patch, which still runs the old version and cannot see it.
 */
import type { Diagnostic } from '../../diagnostic.js';
import { STB } from '../../elf/constants.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const dataNewGlobal: Rule = {
  id: 'KLP-DATA-NEW-GLOBAL',
  title: 'new global data',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.data
      .filter((d) => d.change === 'new' && d.symbol.bind !== STB.LOCAL)
      .map((d) => ({
        severity: 'error' as const,
        code: this.id,
        message: `new global variable \`${d.name}\``,
        location: { file: facts.patchedPath, symbol: d.name, section: d.symbol.section?.name },
        why: 'code outside the livepatch runs unchanged and cannot see a variable the patch adds',
        hint: 'make the variable static to the patched file, or keep the state in a shadow variable (klp_shadow_alloc)',
      }));
  },
};

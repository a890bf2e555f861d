/*
 * Rule KLP-INLINE-SPREAD: a change to a static function that the compiler inlined spreads to its callers.
 *
 * When a static (or static inline) function changes, every caller it was inlined into changes too, and
 * the patch must replace all of them; a static function that vanished from the patched object was
 * inlined everywhere it is used. This is a warning, not a refusal: the patch carries every changed caller,
 * but the operator should know the blast radius is larger than the diff suggests. Callers that cannot be
 * carried (notrace, init, clones) are refused by their own rules.
 */
import type { Diagnostic } from '../../diagnostic.js';
import { STB } from '../../elf/constants.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const inlineSpread: Rule = {
  id: 'KLP-INLINE-SPREAD',
  title: 'change spread by inlining',
  check(facts: ObjectFacts): Diagnostic[] {
    const out: Diagnostic[] = [];
    const changed = facts.functions.filter((f) => f.change === 'changed' && !f.parent);
    const changedNames = new Set(changed.map((f) => f.name));
    for (const f of changed) {
      if (f.symbol.bind !== STB.LOCAL) continue;
      // other changed functions that do not call this one out of line: the change reached them inlined
      const spread = changed.filter((g) => g !== f && !f.callers.includes(g.name)).map((g) => g.name);
      if (spread.length === 0) continue;
      out.push({
        severity: 'warning',
        code: this.id,
        message: `static function \`${f.name}\` changed together with ${spread.length} other function(s) of the file`,
        location: { file: facts.patchedPath, symbol: f.name },
        why: 'if the change is in a function inlined into others, each of them is replaced by the patch',
        hint: 'check the list: every function named here is replaced; if that is more than intended, mark the helper noinline',
        detail: [`also changed: ${spread.join(', ')}`],
      });
    }
    for (const name of facts.removedFunctions) {
      const callers = facts.functions
        .filter((f) => changedNames.has(f.name) && f.name !== name)
        .map((f) => f.name);
      if (callers.length === 0) continue;
      out.push({
        severity: 'warning',
        code: this.id,
        message: `function \`${name}\` is no longer out of line in the patched object`,
        location: { file: facts.originalPath, symbol: name },
        why: 'the compiler inlined (or the patch removed) it; the changed callers carry its new body',
        hint: 'make sure every caller is in the list of changed functions',
        detail: [`changed functions: ${callers.join(', ')}`],
      });
    }
    return out;
  },
};

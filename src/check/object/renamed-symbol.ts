/*
 * Rule KLP-RENAMED-SYMBOL: a changed function whose name the compiler made up cannot be targeted.
 *
 * GCC clones and splits functions when it optimizes: `foo.isra.0` (arguments scalarized), `foo.constprop.0`
 * (constant arguments propagated), `foo.part.0` (a split-off tail). The clone has a calling convention
 * only the compiler knows, its number depends on everything else in the file, and the same source can
 * produce a different clone on the next build. Replacing the clone in the running kernel is a guess.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

const CLONE = /\.(isra|constprop|part)\.\d+/;

export const renamedSymbol: Rule = {
  id: 'KLP-RENAMED-SYMBOL',
  title: 'changed compiler-renamed function',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.functions
      .filter((f) => f.change === 'changed' && !f.parent && CLONE.test(f.originalName ?? f.name))
      .map((f) => {
        const renamed = f.originalName && f.originalName !== f.name;
        return {
          severity: 'error' as const,
          code: this.id,
          message: `changed function \`${f.originalName ?? f.name}\` is a compiler-made clone${renamed ? ` (now \`${f.name}\`)` : ''}`,
          location: { file: facts.originalPath, symbol: f.originalName ?? f.name },
          why: 'GCC made this copy (.isra/.constprop/.part) with a private calling convention; the running kernel cannot be patched at it safely',
          hint: 'change the callers instead, or stop the clone (e.g. mark the function noinline and __attribute__((optimize("no-ipa-sra")))) in both original and patched builds',
          ...(f.callers.length ? { detail: [`called from: ${f.callers.join(', ')}`] } : {}),
        };
      });
  },
};

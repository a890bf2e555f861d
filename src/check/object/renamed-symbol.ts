/*
 * Rule KLP-RENAMED-SYMBOL: a changed compiler clone whose calling convention the callers do not prove.
 *
 * GCC clones and splits functions when it optimizes: `foo.isra.0` (arguments scalarized), `foo.constprop.0`
 * (constant arguments propagated), `foo.part.0` (a split-off tail). A clone's calling convention is the
 * compiler's private choice and the patched build may choose differently. objdiff/clones.ts proves it
 * from the callers instead: when every caller of the clone in the running kernel is either replaced by
 * the patch or unchanged (same bytes, so it passes what the new clone was compiled to receive), the clone
 * is replaced like any function, under the running kernel's name. This rule refuses the clones for which
 * that proof fails, naming the caller that breaks it.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const renamedSymbol: Rule = {
  id: 'KLP-RENAMED-SYMBOL',
  title: 'changed compiler clone with a caller that breaks the proof of its calling convention',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.functions
      .filter((f) => f.change === 'changed' && !f.parent && f.clone?.breaker !== undefined)
      .map((f) => {
        const name = f.originalName ?? f.name;
        const renamed = f.originalName && f.originalName !== f.name;
        const breaker = f.clone!.breaker!;
        return {
          severity: 'error' as const,
          code: this.id,
          message: `changed function \`${name}\` is a compiler-made clone${renamed ? ` (now \`${f.name}\`)` : ''}, and \`${breaker}\` ${f.clone!.why ?? 'breaks the proof of its calling convention'}`,
          location: { file: facts.originalPath, symbol: name },
          why: `GCC made this copy (.${f.clone!.kind}) with a private calling convention; it may replace the running kernel's only when every caller is unchanged (same call, so the same convention) or replaced too, and \`${breaker}\` is neither`,
          hint: `change \`${breaker}\` too (or the functions the kernel reaches it through), so the patch replaces it, or patch the callers of the clone instead of the clone`,
          ...(f.callers.length ? { detail: [`called from: ${f.callers.join(', ')}`] } : {}),
        };
      });
  },
};

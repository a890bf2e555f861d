/*
 * Rule KLP-RESERVED-NAME: a replaced function named with the prefix of the generated registration.
 *
 * The registration C declares each new function under a `suture_` name bound to the diff object's
 * symbol by an asm label; a replaced function with that prefix could be captured by one of them.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const RESERVED_PREFIX = 'suture_';

export const reservedName = {
  id: 'KLP-RESERVED-NAME',
  title: `a replaced function whose name starts with ${RESERVED_PREFIX}, the generated registration's prefix`,
  check(replaced: readonly string[]): Diagnostic[] {
    const name = replaced.find((n) => n.startsWith(RESERVED_PREFIX));
    if (name === undefined) return [];
    return [
      {
        severity: 'error',
        code: this.id,
        message: `replaced function \`${name}\` uses the prefix ${RESERVED_PREFIX} reserved for the generated registration`,
        hint: 'rename the function in the patch',
      },
    ];
  },
} satisfies RuleInfo & Record<string, unknown>;

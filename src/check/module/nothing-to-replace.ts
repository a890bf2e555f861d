/*
 * Rule KLP-NOTHING-TO-REPLACE: the module would register no klp_func.
 *
 * A livepatch works by replacing existing functions; a patch that only adds functions has nothing that
 * would ever call them.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const nothingToReplace = {
  id: 'KLP-NOTHING-TO-REPLACE',
  title: 'a module that would replace no existing function',
  check(replacedCount: number): Diagnostic[] {
    if (replacedCount > 0) return [];
    return [
      {
        severity: 'error',
        code: this.id,
        message: 'no existing function changes: there is nothing for a livepatch to replace',
        hint: 'a patch that only adds functions needs an existing caller to change too',
      },
    ];
  },
} satisfies RuleInfo & Record<string, unknown>;

/*
 * Rule KLP-DUPLICATE-FUNCTION: one global function carried from two files of the patch.
 *
 * The diff objects of one livepatch are linked into one module: two global definitions of the same name
 * cannot both exist, and the klp_func would not know which one replaces the kernel's.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const duplicateFunction = {
  id: 'KLP-DUPLICATE-FUNCTION',
  title: 'a global function carried from two files of the same patch',
  diagnose(name: string, first: string, second: string): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `\`${name}\` is carried from both ${first} and ${second}`,
      hint: 'split the patch in two livepatches, one per file',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

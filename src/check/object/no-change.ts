/*
 * Rule BUILD-NO-CHANGE: after compiling, no existing function of the running kernel changed.
 *
 * Comments, dead code, or a change the compiler optimised away leave every object the same as its
 * original; new functions alone have nothing in the running kernel that would call them. Runs over all
 * units of a build at once, after the per-object rules found nothing to refuse.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { FunctionDiff } from '../facts.js';
import type { RuleInfo } from '../refusal.js';

export interface UnitChanges {
  /** object file name for messages, e.g. `meminfo.o` */
  object: string;
  functions: readonly FunctionDiff[];
}

export const noChange = {
  id: 'BUILD-NO-CHANGE',
  title: 'a diff that changes no function of the running kernel',
  /** `summary`: the build's lines naming changed and new functions (shown as the detail) */
  check(units: readonly UnitChanges[], summary: string[]): Diagnostic[] {
    if (units.some((u) => u.functions.some((f) => f.change === 'changed'))) return [];
    return [
      {
        severity: 'error',
        code: this.id,
        message: 'the diff changes no function of the running kernel',
        detail: summary.length ? summary : units.map((u) => `${u.object}: every function is the same`),
        why: 'after compiling, the patched objects have the same code as the originals (comments, dead code, or a change the compiler optimised away)',
        hint: 'nothing to livepatch',
      },
    ];
  },
} satisfies RuleInfo & Record<string, unknown>;

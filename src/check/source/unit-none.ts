/*
 * Rule UNIT-NONE: the diff changes no code compiled into the kernel.
 *
 * Documentation, tools, samples, or headers no unit of this kernel includes: there is nothing for a
 * livepatch to replace.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const unitNone = {
  id: 'UNIT-NONE',
  title: 'a diff that changes no code compiled into this kernel',
  diagnose(detail: string[]): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: 'the diff changes no code that is compiled into this kernel',
      detail,
      hint: 'a livepatch needs a change to a C function of vmlinux or a module',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

/*
 * Rule BUILD-MISSING-DEFINITIONS: the patched unit needs definitions this kernel's source does not have.
 *
 * A stable fix often relies on declarations added elsewhere in the same release — a new field, a helper,
 * a constant, typically in a header. Against the running kernel's source the patched unit then does not
 * compile; the compiler's errors name what is missing.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const missingDefinitions = {
  id: 'BUILD-MISSING-DEFINITIONS',
  title: 'a patched unit that needs definitions (types, fields, functions) the kernel source lacks',
  diagnose(source: string, missing: string[], compilerErrors: string[] | undefined): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `${source} needs definitions this kernel's source does not have: ${missing.join(', ')}`,
      location: { file: source },
      detail: compilerErrors,
      why: 'the fix relies on declarations (types, fields, functions, constants) added elsewhere in the same release, typically in a header — they are not in the running kernel',
      hint: 'backport the missing definitions as part of the livepatch (static helpers in the .c file), or ship the fix in a kernel update',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

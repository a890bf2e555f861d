/*
 * Rule UNIT-UNSUPPORTED: a changed file that is not a C source or header of the kernel.
 *
 * A livepatch is made from the objects of changed C translation units. Assembly has no function-level
 * object diff; Makefiles, Kconfig and data files change the build, not running code; an added file
 * needs a Makefile change and a deleted one takes code away that the running kernel still runs.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export type UnsupportedChange = 'add' | 'delete' | 'assembly' | 'other';

const REASONS: Record<UnsupportedChange, { why: string; hint: string }> = {
  add: {
    why: 'the diff adds a file: a new unit needs a Makefile change',
    hint: 'put new code into an existing .c file of the same object (static functions are fine)',
  },
  delete: {
    why: 'the diff deletes a file',
    hint: 'put new code into an existing .c file of the same object (static functions are fine)',
  },
  assembly: {
    why: 'assembly has no function-level object diff',
    hint: 'express the fix in C, or ship it in a kernel update',
  },
  other: {
    why: 'only C sources and headers change running code (Makefiles, Kconfig and data files change the build)',
    hint: 'limit the diff to .c and .h files',
  },
};

export const unitUnsupported = {
  id: 'UNIT-UNSUPPORTED',
  title: 'a change to a file that is not C source or a header (assembly, Makefile, new or deleted file)',
  diagnose(path: string, change: UnsupportedChange): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `cannot livepatch a change to \`${path}\``,
      location: { file: path },
      ...REASONS[change],
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

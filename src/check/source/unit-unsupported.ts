/*
 * Rule UNIT-UNSUPPORTED: a changed file that is not a C source or header of the kernel.
 *
 * A livepatch is made from the objects of changed C translation units. Assembly has no function-level
 * object diff; Makefiles, Kconfig and data files change the build, not running code. A deleted file is
 * refused only when something compiled still uses it: a deleted unit (its code runs in the kernel and
 * the Makefile would have to change) or a deleted header/included .c that a built unit still
 * #includes after the patch (`includers`). New .c units are UNIT-NEW-FILE.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export type UnsupportedChange = 'delete' | 'assembly' | 'other';

const REASONS: Record<UnsupportedChange, { why: string; hint: string }> = {
  delete: {
    why: 'the diff deletes a file that the kernel still compiles: a unit of its own (the running kernel runs its code, and the Makefile would have to change) or one a built unit still #includes',
    hint: 'keep the file and change what uses it instead; or drop the #include from every unit named here in the same diff',
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
  title:
    'a change to a file that is not C source or a header (assembly, Makefile), or a deleted file still compiled',
  diagnose(path: string, change: UnsupportedChange, includers: string[] = []): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message:
        change === 'delete'
          ? `the diff deletes \`${path}\`, which ${includers.length ? `${includers.join(', ')} still #include${includers.length === 1 ? 's' : ''}` : 'is compiled as a unit of its own'}`
          : `cannot livepatch a change to \`${path}\``,
      location: { file: path },
      ...REASONS[change],
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

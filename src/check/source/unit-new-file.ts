/*
 * Rule UNIT-NEW-FILE: the diff adds a .c file that is a translation unit of its own.
 *
 * A livepatch is built from the objects of existing units, compiled with kbuild's recipe for each. A new
 * .c file that no changed file #includes would be a new object: it needs a Makefile (obj-y / foo-objs)
 * change, has no recipe in this kernel's build, and nothing in the running kernel to replace. New headers
 * and new .c files #included by a changed unit are fine: they are compiled as part of that unit.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const unitNewFile = {
  id: 'UNIT-NEW-FILE',
  title: 'a new .c file that is its own translation unit (needs a Makefile change)',
  diagnose(path: string): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `the diff adds \`${path}\`, a new translation unit`,
      location: { file: path },
      why: 'no changed file #includes it, so it would be a new object: that needs a Makefile change, and a livepatch is built from the existing objects of this kernel',
      hint: 'move the new code into the existing .c file that uses it (as static functions), or #include the new file from that .c file',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

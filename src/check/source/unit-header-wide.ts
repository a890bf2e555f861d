/*
 * Rule UNIT-HEADER-WIDE: a changed header included by more units than a livepatch should recompile.
 *
 * A header change that reaches many objects is almost always a data-structure or inline change, which a
 * livepatch cannot carry safely, and compiling all of them would not take seconds.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** The most units a changed header may pull in before the change is refused. */
export const MAX_HEADER_UNITS = 8;

export const unitHeaderWide = {
  id: 'UNIT-HEADER-WIDE',
  title: `a changed header included by more than ${MAX_HEADER_UNITS} units`,
  diagnose(header: string, units: string[]): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `\`${header}\` is included by ${units.length} units`,
      location: { file: header },
      detail: units.slice(0, 12).concat(units.length > 12 ? [`… and ${units.length - 12} more`] : []),
      why: 'a header change that reaches this many objects is almost always a data-structure or inline change, which a livepatch cannot carry safely',
      hint: 'move the change into the .c file that needs it, or ship it in a kernel update',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

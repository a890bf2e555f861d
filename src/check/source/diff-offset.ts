/*
 * Rule DIFF-OFFSET (warning): a hunk that GNU patch applied some lines away from where the diff says.
 *
 * Diffs made against a neighbouring release (a stable fix from 6.1.192 applied to 6.1.187) often land a
 * few lines up or down: the context and removed lines match exactly, only the position moved. That is
 * how `patch` applies them and the change is the same, so the build goes on; the warning names the hunk
 * and where it landed so the reviewer can look at the exact spot.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const diffOffset = {
  id: 'DIFF-OFFSET',
  title: 'a hunk applied at an offset from the line the diff names',
  diagnose(file: string, hunk: number, line: number, offset: number): Diagnostic {
    const lines = `${offset > 0 ? '+' : ''}${offset} line${Math.abs(offset) === 1 ? '' : 's'}`;
    return {
      severity: 'warning',
      code: this.id,
      message: `hunk #${hunk} of \`${file}\` applied at line ${line} (offset ${lines})`,
      location: { file, line },
      why: 'the context and removed lines match exactly, a few lines away from where the diff says: the diff was made against a slightly different source',
      hint: 'check the landing spot; regenerate the diff against this kernel to silence the warning',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

/*
 * Rule DIFF-FUZZ: a hunk that applies only when GNU patch ignores some of its context lines.
 *
 * With fuzz F, `patch` drops up to F context lines at each end of a hunk before matching it. The removed
 * and added lines still have to match, but the hunk's neighbourhood no longer does: in a kernel source, a
 * hunk can then land in the wrong copy of a repeated pattern (another `if (err) goto out;`, another
 * `show_val_kb(...)`), in a different function than the author meant — and the livepatch would replace
 * that function in the running kernel. So fuzz is refused unless the user asks for it with `--fuzz N`
 * (N ≤ 3, GNU patch's own limit of sense); then each fuzzy hunk is a warning naming where it landed.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** The largest fuzz accepted (GNU patch defaults to 2; beyond 3 the context means nothing). */
export const MAX_FUZZ = 3;

export interface FuzzyHunk {
  file: string;
  /** 1-based hunk number within the file */
  hunk: number;
  /** the line it lands on (or would land on) */
  line: number;
  /** context lines patch had to ignore */
  fuzz: number;
  /** the hunk's header and body, for the refusal */
  text: string[];
}

export const diffFuzz = {
  id: 'DIFF-FUZZ',
  title: 'a hunk that applies only by ignoring context lines (refused unless --fuzz N allows it)',
  /** `h` and the `others` of the same file that need fuzz too: the hint names the fuzz the worst needs */
  refused(h: FuzzyHunk, allowed: number, others: FuzzyHunk[] = []): Diagnostic {
    const needed = Math.max(h.fuzz, ...others.map((o) => o.fuzz));
    return {
      severity: 'error',
      code: this.id,
      message: `hunk #${h.hunk} of \`${h.file}\` applies only with fuzz ${h.fuzz}: it would land at line ${h.line}`,
      location: { file: h.file, line: h.line },
      detail: [
        ...h.text,
        ...others.map((o) => `also hunk #${o.hunk}: fuzz ${o.fuzz}, would land at line ${o.line}`),
      ],
      why: `${h.fuzz} context line${h.fuzz === 1 ? '' : 's'} of the hunk ${h.fuzz === 1 ? 'does' : 'do'} not match the kernel source${allowed ? ` (allowed: fuzz ${allowed})` : ''}: a fuzzy hunk can land in the wrong place, and the livepatch would replace that code in the running kernel`,
      hint: `look at line ${h.line} of ${h.file}${others.length ? ' (and the lines listed)' : ''}: if that is where the change belongs, build with \`--fuzz ${needed}\`; better, regenerate the diff against this kernel's source`,
    };
  },
  accepted(h: FuzzyHunk): Diagnostic {
    return {
      severity: 'warning',
      code: this.id,
      message: `hunk #${h.hunk} of \`${h.file}\` applied with fuzz ${h.fuzz} at line ${h.line}`,
      location: { file: h.file, line: h.line },
      why: `${h.fuzz} context line${h.fuzz === 1 ? '' : 's'} of the hunk did not match; --fuzz allowed it`,
      hint: 'check that the hunk landed in the function it was written for',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

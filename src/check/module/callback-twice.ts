/*
 * Rule KLP-CALLBACK-TWICE: two callbacks of the same kind for the same klp object.
 *
 * A klp_object has one pre_patch, one post_patch, one pre_unpatch and one post_unpatch callback. Two
 * macros of the same kind for one object (in one file, or in two files of the same object) cannot both
 * be registered, and running only one of them silently would drop the other author's intent.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** A callback macro as the patched objects record it. */
export interface CallbackPlace {
  /** the klp object: `vmlinux` or a module name */
  object: string;
  /** pre_patch, post_patch, pre_unpatch or post_unpatch */
  callback: string;
  /** the patched file and the macro's line */
  file: string;
  line: number;
}

export const callbackTwice = {
  id: 'KLP-CALLBACK-TWICE',
  title: 'two callbacks of the same kind for the same patched object',
  check(places: readonly CallbackPlace[]): Diagnostic[] {
    const seen = new Map<string, CallbackPlace>();
    const out: Diagnostic[] = [];
    for (const p of places) {
      const key = `${p.object}\0${p.callback}`;
      const first = seen.get(key);
      if (!first) {
        seen.set(key, p);
        continue;
      }
      out.push({
        severity: 'error',
        code: this.id,
        message: `two ${p.callback} callbacks for ${p.object}: ${first.file}:${first.line} and ${p.file}:${p.line}`,
        location: { file: p.file, line: p.line },
        why: `a klp_object has one ${p.callback} callback; the kernel cannot run both, and keeping one would drop the other`,
        hint: 'merge the two callbacks into one function that does both, and register it once',
      });
    }
    return out;
  },
} satisfies RuleInfo & Record<string, unknown>;

/*
 * Rule KLP-NOTRACE: a changed function must have an ftrace hook.
 *
 * The livepatch core redirects a function by registering an ftrace handler on its first instruction,
 * the `call __fentry__` the compiler emits (and that `__mcount_loc` / `__patchable_function_entries`
 * list). Functions built `notrace` — noinstr code, entry code, parts of ftrace itself, anything in a
 * file with `CFLAGS_REMOVE_... = -pg` — have no hook, so they cannot be replaced.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const notrace: Rule = {
  id: 'KLP-NOTRACE',
  title: 'changed function without an ftrace hook',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.functions
      .filter((f) => f.change === 'changed' && !f.parent && !f.originalTraceable)
      .map((f) => ({
        severity: 'error' as const,
        code: this.id,
        message: `changed function \`${f.originalName ?? f.name}\` cannot be traced (no __fentry__ call)`,
        location: {
          file: facts.originalPath,
          symbol: f.originalName ?? f.name,
          section: f.symbol.section?.name,
        },
        why: 'livepatch redirects a function through its ftrace hook; this one is built notrace (noinstr, entry code or -pg removed)',
        hint: 'patch a traceable caller instead (copy the changed logic into it), or ship the fix in a kernel update',
        ...(f.callers.length ? { detail: [`callers in this file: ${f.callers.join(', ')}`] } : {}),
      }));
  },
};

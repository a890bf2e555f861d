/*
 * Rule KLP-MODULE-TRACEPOINT-INERT (warning): a tracepoint of a module, used by the patched code, is
 * carried inert.
 *
 * A tracepoint's key and static call live in the module that defines it (`CREATE_TRACE_POINTS`), and
 * the livepatch cannot set up jump labels or static calls keyed on a module (KLP-MODULE-KEY). The fix
 * matters more than a trace event, so the livepatch module drops the tracepoint's `__jump_table` and
 * `.static_call_sites` entries: the site keeps its compiled-in no-op and the patched copy never emits
 * that event, enabled or not. The build says so, naming the tracepoint and the function; `--strict`
 * turns it into KLP-MODULE-KEY's refusal.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';
import type { EarlyTableReference } from './module-key.js';

export const moduleTracepointInert = {
  id: 'KLP-MODULE-TRACEPOINT-INERT',
  title: "a module's tracepoint in the patched code, carried inert (warning)",
  /** One warning per tracepoint and function among the entries that were dropped. */
  check(source: string, inert: readonly EarlyTableReference[]): Diagnostic[] {
    const seen = new Set<string>();
    const out: Diagnostic[] = [];
    for (const r of inert) {
      const key = `${r.tracepoint}\0${r.function ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        severity: 'warning',
        code: this.id,
        message: `tracepoint \`${r.tracepoint}\` of module ${r.object} is inert in the patched ${r.function ?? 'code'}: its events are not emitted from the patched copy`,
        location: { file: source, symbol: r.function ?? r.name },
        why: `the tracepoint's key and static call live in ${r.object}, which the livepatch cannot key a jump label on; its entries are left out, so the site stays the compiled-in no-op`,
        hint: 'nothing to do if the trace event may go quiet while the livepatch is loaded; `--strict` refuses the build instead',
      });
    }
    return out;
  },
} satisfies RuleInfo & Record<string, unknown>;

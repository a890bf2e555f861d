/*
 * Rule KLP-MODULE-KEY: a jump label, static call or CPU alternative of the patched code keyed on a
 * symbol of a module.
 *
 * Jump labels, static calls and CPU alternatives are set up when the livepatch module itself loads
 * (module_finalize, module notifiers), but klp relocations against a module's symbols are resolved only
 * when that module loads — later. An entry whose key lives in a module would be initialised against an
 * unresolved address. (vmlinux klp relocations are applied while the livepatch loads, before the
 * notifiers, so vmlinux keys are fine.)
 *
 * Four kinds, each with its own way out: a tracepoint's key and its static call (made inert instead,
 * with KLP-MODULE-TRACEPOINT-INERT, unless `--strict`), another static key (`static_key_enabled()`),
 * another static call (`KLP_STATIC_CALL()`: a plain call through the key's current target), and a CPU
 * alternative (moved into a helper the patch leaves alone).
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** Tables set up when the livepatch loads, before klp relocations of modules are resolved. */
export const EARLY_TABLES = ['__jump_table', '.static_call_sites', '.altinstr_replacement', '.altinstr_aux'];

export type EarlyKeyKind = 'tracepoint' | 'static-key' | 'static-call' | 'alternative';

export interface EarlyTableReference {
  /** one of EARLY_TABLES */
  table: string;
  /** the klp object of the referenced symbol (`vmlinux` or a module) */
  object: string;
  name: string;
  /** what the entry is, from its table and its key's name (earlyKeyKind) */
  kind: EarlyKeyKind;
  /** the tracepoint (`kyber_adjust`) when kind is `tracepoint` */
  tracepoint?: string;
  /** the carried function the entry belongs to, when known */
  function?: string;
  /** a tracepoint entry that cannot be left inert (its site is not the compiled-in no-op), with why */
  notInert?: string;
}

const TRACEPOINT_KEY = /^__tracepoint_(.+)$/;
/** a tracepoint's static call: its key, or its trampoline when objtool named the site by it */
const TRACEPOINT_CALL = /^__SC[KT]__tp_func_(.+)$/;

/** What an early table entry keyed on `name` is. */
export function earlyKeyKind(table: string, name: string): { kind: EarlyKeyKind; tracepoint?: string } {
  const tp = (table === '__jump_table' ? TRACEPOINT_KEY : TRACEPOINT_CALL).exec(name)?.[1];
  if (tp && (table === '__jump_table' || table === '.static_call_sites'))
    return { kind: 'tracepoint', tracepoint: tp };
  if (table === '__jump_table') return { kind: 'static-key' };
  if (table === '.static_call_sites') return { kind: 'static-call' };
  return { kind: 'alternative' };
}

const BASE_WHY =
  'the livepatch sets up its jump labels, static calls and alternatives when it loads, before the livepatch core can resolve symbols of a module';

function wording(k: EarlyTableReference, strict: boolean): { message: string; why: string; hint: string } {
  const where = k.function ? ` (in ${k.function})` : '';
  switch (k.kind) {
    case 'tracepoint':
      return {
        message: `tracepoint \`${k.tracepoint}\` of module ${k.object} in the patched code${where}`,
        why: k.notInert
          ? `${BASE_WHY}; and it cannot be left inert: ${k.notInert}`
          : `${BASE_WHY}; without --strict it would be carried inert (KLP-MODULE-TRACEPOINT-INERT)`,
        hint: strict
          ? 'build without --strict to carry the fix with this trace event silent in the patched code, or drop the trace call from the patched function'
          : 'drop the trace call from the patched function, or move it into a helper the patch does not change',
      };
    case 'static-key':
      return {
        message: `a static branch in the patched code${where} tests \`${k.name}\` of module ${k.object}`,
        why: `${BASE_WHY}: the jump label would be patched against an unresolved key`,
        hint: `test the key with static_key_enabled(&${k.name}) (a plain load of its state) instead of static_branch_*()`,
      };
    case 'static-call': {
      const call = k.name.replace(/^__SC[KT]__/, '');
      return {
        message: `a static call in the patched code${where} goes through \`${k.name}\` of module ${k.object}`,
        why: `${BASE_WHY}: the call site would be patched against an unresolved key`,
        hint: `call the static call's current target as a plain call: KLP_STATIC_CALL(${call})(…) (#include <linux/livepatch_helpers.h>) instead of static_call(${call})(…)`,
      };
    }
    default:
      return {
        message: `a CPU alternative in the patched code${where} uses \`${k.name}\` of module ${k.object}`,
        why: `${BASE_WHY}: the alternative would be applied with an unresolved address`,
        hint: 'move the alternative() into a helper the patch does not change, and call that',
      };
  }
}

export const moduleKey = {
  id: 'KLP-MODULE-KEY',
  title: 'a jump label, static call or alternative of the patched code keyed on a module symbol',
  /**
   * The first entry keyed on a module symbol, as the refusal (none when every key is in vmlinux).
   * `refs` are what is left after inert tracepoints were dropped; under `strict` none were.
   */
  check(source: string, refs: readonly EarlyTableReference[], strict = false): Diagnostic[] {
    const k = refs.find((r) => r.object !== 'vmlinux');
    if (!k) return [];
    return [
      {
        severity: 'error',
        code: this.id,
        ...wording(k, strict),
        location: { file: source, section: k.table, symbol: k.name },
      },
    ];
  },
} satisfies RuleInfo & Record<string, unknown>;

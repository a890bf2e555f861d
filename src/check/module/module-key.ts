/*
 * Rule KLP-MODULE-KEY: a jump label, static call or CPU alternative of the patched code keyed on a
 * symbol of a module.
 *
 * Jump labels, static calls and CPU alternatives are set up when the livepatch module itself loads
 * (module_finalize, module notifiers), but klp relocations against a module's symbols are resolved only
 * when that module loads — later. An entry whose key lives in a module would be initialised against an
 * unresolved address. (vmlinux klp relocations are applied while the livepatch loads, before the
 * notifiers, so vmlinux keys are fine.)
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** Tables set up when the livepatch loads, before klp relocations of modules are resolved. */
export const EARLY_TABLES = ['__jump_table', '.static_call_sites', '.altinstr_replacement', '.altinstr_aux'];

export interface EarlyTableReference {
  /** one of EARLY_TABLES */
  table: string;
  /** the klp object of the referenced symbol (`vmlinux` or a module) */
  object: string;
  name: string;
}

const WHAT: Record<string, string> = {
  __jump_table: 'jump label',
  '.static_call_sites': 'static call',
};

export const moduleKey = {
  id: 'KLP-MODULE-KEY',
  title: 'a jump label, static call or alternative of the patched code keyed on a module symbol',
  /** the first reference to a module symbol, as the refusal (none when every key is in vmlinux) */
  check(source: string, refs: readonly EarlyTableReference[]): Diagnostic[] {
    const k = refs.find((r) => r.object !== 'vmlinux');
    if (!k) return [];
    return [
      {
        severity: 'error',
        code: this.id,
        message: `a ${WHAT[k.table] ?? 'CPU alternative'} in the patched code uses \`${k.name}\` of module ${k.object}`,
        location: { file: source, section: k.table, symbol: k.name },
        why: 'the livepatch sets up its jump labels, static calls and alternatives when it loads, before the livepatch core can resolve symbols of a module',
        hint: 'use static_key_enabled()/a plain call in the patched function instead of the static branch or static call',
      },
    ];
  },
} satisfies RuleInfo & Record<string, unknown>;

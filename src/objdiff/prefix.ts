/*
 * Function prefixes: the padding a kernel built with CALL_PADDING / PREFIX_SYMBOLS puts before every
 * function (16 bytes of NOPs from `-fpatchable-function-entry=16,16`, later rewritten at boot into a
 * call-depth-tracking thunk or a FineIBT preamble), named `__pfx_<function>` by objtool (`__cfi_<function>`
 * for clang's kCFI preamble). A prefix is no function of its own: it belongs to the function it precedes
 * (in the same section or not), which is carried, compared and correlated together with it.
 */
import { STT } from '../elf/constants.js';
import type { ElfSymbol } from '../elf/model.js';

const PREFIX = /^__(pfx|cfi)_(.+)$/;

/** The function a prefix symbol belongs to (`meminfo_proc_show` for `__pfx_meminfo_proc_show`). */
export function prefixedName(name: string): string | undefined {
  return PREFIX.exec(name)?.[2];
}

/** The prefix symbol of each function of `symbols` that has one: function → its prefix. */
export function prefixesOf(symbols: readonly ElfSymbol[]): Map<ElfSymbol, ElfSymbol> {
  const funcs = new Map<string, ElfSymbol>();
  for (const s of symbols) if (s.type === STT.FUNC && s.section && !PREFIX.test(s.name)) funcs.set(s.name, s);
  const out = new Map<ElfSymbol, ElfSymbol>();
  for (const s of symbols) {
    const of = s.section && s.type === STT.FUNC ? prefixedName(s.name) : undefined;
    const f = of === undefined ? undefined : funcs.get(of);
    if (f) out.set(f, s);
  }
  return out;
}

/** Whether `s` is the prefix of a function defined next to it in `symbols`. */
export function prefixSet(symbols: readonly ElfSymbol[]): Set<ElfSymbol> {
  return new Set(prefixesOf(symbols).values());
}

/*
 * Rule KLP-RETURN-THUNK: on a return-thunk kernel, carried code must return through the kernel's thunk.
 *
 * With MITIGATION_RETHUNK (retbleed, SRSO, call depth tracking) every `ret` of the kernel is compiled as
 * `jmp __x86_return_thunk`, which the kernel patches at boot to the mitigation the CPU needs. A carried
 * function compiled without `-mfunction-return=thunk-extern` returns with a bare `ret`: it reopens the
 * hole the mitigation closes, and under call depth tracking it unbalances the return stack accounting.
 * A function is refused when it has no jump to the thunk and ends with a bare `ret` (with or without the
 * `int3` of straight-line-speculation hardening), or when its twin returned through the thunk and it
 * does not.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';
import { bytesOf, enteredFunctions, relocationsOf } from './carried-code.js';

/** The last byte before trailing int3 / nop padding is a `ret` (0xc3). */
function endsWithBareRet(code: Uint8Array): boolean {
  let i = code.length - 1;
  while (i >= 0 && (code[i] === 0xcc || code[i] === 0x90)) i--;
  return i >= 0 && code[i] === 0xc3;
}

export const returnThunk: Rule = {
  id: 'KLP-RETURN-THUNK',
  title: 'carried function returning without the kernel`s return thunk',
  check(facts: ObjectFacts): Diagnostic[] {
    const t = facts.target;
    if (!t?.rethunk) return [];
    const thunked = (obj: ObjectFacts['patched'], f: Parameters<typeof relocationsOf>[1]) =>
      relocationsOf(obj, f).some((r) => r.symbol?.name === t.returnThunk);
    return enteredFunctions(facts)
      .filter((f) => {
        if (thunked(facts.patched, f.symbol)) return false;
        return (
          endsWithBareRet(bytesOf(f.symbol)) || (f.twin !== undefined && thunked(facts.original, f.twin))
        );
      })
      .map((f) => ({
        severity: 'error' as const,
        code: this.id,
        message: `carried function \`${f.name}\` returns without ${t.returnThunk}`,
        location: { file: facts.patchedPath, symbol: f.name, section: f.symbol.section?.name },
        why: 'the target kernel sends every return through its return thunk (retbleed/SRSO mitigation, call depth tracking); a bare ret bypasses it',
        hint: 'compile the patched unit with the kernel`s own flags (-mfunction-return=thunk-extern, as kbuild does); `suture build` does',
      }));
  },
};

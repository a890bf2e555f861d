/*
 * Rule KLP-IBT-ENDBR: on an IBT kernel, carried code must start with `endbr64`.
 *
 * With X86_KERNEL_IBT the CPU faults (#CP) when an indirect call or jump lands anywhere but an
 * `endbr64`. A carried function is reached from the running kernel through its ftrace hook and through
 * pointers the patch stores; compiled without `-fcf-protection=branch` it has no `endbr64`, and the first
 * indirect call into it oopses. QEMU's TCG CPU has no IBT, so no VM test can catch it: it is checked here.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';
import { bytesOf, enteredFunctions } from './carried-code.js';

const ENDBR64 = [0xf3, 0x0f, 0x1e, 0xfa];

export const ibtEndbr: Rule = {
  id: 'KLP-IBT-ENDBR',
  title: 'carried function without endbr64 on an IBT kernel',
  check(facts: ObjectFacts): Diagnostic[] {
    if (!facts.target?.ibt) return [];
    return enteredFunctions(facts)
      .filter((f) => !ENDBR64.every((b, i) => bytesOf(f.symbol)[i] === b))
      .map((f) => ({
        severity: 'error' as const,
        code: this.id,
        message: `carried function \`${f.name}\` does not start with endbr64`,
        location: { file: facts.patchedPath, symbol: f.name, section: f.symbol.section?.name },
        why: 'the target kernel enforces IBT: an indirect call or jump into a function without endbr64 faults (#CP)',
        hint: 'compile the patched unit with the kernel`s own flags (-fcf-protection=branch, as kbuild does); `suture build` does',
      }));
  },
};

/*
 * Rule KLP-SYSCALL-NOT-IN-FILE: a patched-syscall macro for a syscall the file does not define.
 *
 * KLP_SYSCALL_DEFINEn / KPATCH_SYSCALL_DEFINEn replace a file's SYSCALL_DEFINEn(name, …) so that the
 * syscall's wrappers (`__x64_sys_NAME`, `__se_sys_NAME`, `__do_sys_NAME` on x86-64) are the functions
 * that change. In a file that defines no such syscall they would define new wrappers nothing calls: the
 * syscall table of the running kernel points at the file that really defines it, which stays unpatched.
 * The rule reads the patched file's text for the macros and the original for the definition.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

/** A changed C file: its path, the original text and the patched text. */
export interface SyscallSource {
  path: string;
  original: string;
  patched: string;
}

const MACRO = /\b(KLP|KPATCH)_SYSCALL_DEFINE([0-6])\s*\(\s*(\w+)/g;

/** The line (1-based) of offset `at` in `text`. */
const lineOf = (text: string, at: number) => text.slice(0, at).split('\n').length;

export const syscallNotInFile = {
  id: 'KLP-SYSCALL-NOT-IN-FILE',
  title: 'a patched-syscall macro for a syscall the file does not define',
  check(files: readonly SyscallSource[]): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const f of files) {
      for (const m of f.patched.matchAll(MACRO)) {
        const [, vocabulary, , name] = m;
        const defined = new RegExp(`\\b(COMPAT_)?SYSCALL_DEFINE[0-6]\\s*\\(\\s*${name}\\s*[,)]`);
        if (defined.test(f.original)) continue;
        out.push({
          severity: 'error',
          code: this.id,
          message: `${vocabulary}_SYSCALL_DEFINE${m[2]}(${name}, …): ${f.path} defines no syscall \`${name}\``,
          location: { file: f.path, line: lineOf(f.patched, m.index) },
          why: `the macro patches the syscall defined in this file; ${f.path} has no SYSCALL_DEFINEn(${name}, …), so the wrappers would be new functions nothing calls`,
          hint: `patch the file that defines SYSCALL_DEFINEn(${name}, …) (grep for it in the kernel tree), or check the syscall's name`,
        });
      }
    }
    return out;
  },
} satisfies RuleInfo & Record<string, unknown>;

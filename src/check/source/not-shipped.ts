/*
 * Rule VERIFY-NOT-SHIPPED: the shipped binary has no symbols from the changed file.
 *
 * The unit compiles, but the debug vmlinux or module has no STT_FILE group of that name: the unit is
 * not built into this binary with the image's configuration, so there is nothing to replace.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const notShipped = {
  id: 'VERIFY-NOT-SHIPPED',
  title: 'a compiled unit of which the shipped binary has no symbols',
  diagnose(source: string, where: string, basename: string): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `${where} has no symbols from \`${basename}\``,
      location: { file: source },
      why: 'the unit is not built into this binary with the image configuration (or the binary has no symbol table)',
      hint: 'a livepatch can only replace code the running kernel has: check the path and the kernel',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

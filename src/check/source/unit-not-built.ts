/*
 * Rule UNIT-NOT-BUILT: the changed file is not part of this kernel.
 *
 * Its module is not in the image's modules.order, or the unmodified file does not even compile with the
 * image's configuration and the binary it would belong to has no symbols from it: the option that builds
 * it is off, and a livepatch can only change code the running kernel has.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { RuleInfo } from '../refusal.js';

export const unitNotBuilt = {
  id: 'UNIT-NOT-BUILT',
  title: 'a changed file this kernel does not build (module not shipped, config option off)',
  /** kbuild says the file belongs to a module the image does not ship */
  moduleNotShipped(source: string, module: string): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `${source} belongs to module \`${module}\`, which this kernel does not ship`,
      location: { file: source },
      why: "the image's modules.order has no such module: the code is not built with this kernel's config",
      hint: 'a livepatch can only change code the running kernel has: drop this file from the diff',
    };
  },
  /** the unmodified file does not compile, and its binary has no symbols from it */
  configOff(source: string, target: string, compilerErrors: string[] | undefined): Diagnostic {
    return {
      severity: 'error',
      code: this.id,
      message: `${source} is not part of this kernel`,
      location: { file: source },
      detail: compilerErrors?.slice(0, 12),
      why: `the unmodified file does not compile with the image's configuration and ${target === 'vmlinux' ? 'vmlinux' : `module ${target}`} has no symbols from it: the option that builds it is off`,
      hint: 'a livepatch can only change code the running kernel has: nothing to patch on this kernel',
    };
  },
} satisfies RuleInfo & Record<string, unknown>;

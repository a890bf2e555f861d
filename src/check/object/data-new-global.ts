/*
 * Rule KLP-DATA-NEW-GLOBAL: a new global variable whose name the running kernel already defines.
 *
 * A new variable, static or global, is carried in the livepatch module: it starts from its initializer
 * when the patch loads, and references from carried code resolve to it (the linker binds them in the
 * module), never to the running kernel. That is safe as long as the running kernel has no variable of
 * that name: when it has one (the patch moved a definition into this file, or reuses a name defined in
 * another unit), code outside the patch keeps using the kernel's copy while the patched code uses the
 * module's — two notions of one state.
 */
import type { Diagnostic } from '../../diagnostic.js';
import { STB } from '../../elf/constants.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const dataNewGlobal: Rule = {
  id: 'KLP-DATA-NEW-GLOBAL',
  title: 'a new global variable whose name the running kernel already defines',
  check(facts: ObjectFacts): Diagnostic[] {
    const kernelGlobal = facts.kernelGlobal;
    if (!kernelGlobal) return [];
    return facts.data
      .filter((d) => d.change === 'new' && d.symbol.bind !== STB.LOCAL && kernelGlobal(d.name))
      .map((d) => ({
        severity: 'error' as const,
        code: this.id,
        message: `new global variable \`${d.name}\` has the name of a global the running kernel already defines`,
        location: { file: facts.patchedPath, symbol: d.name, section: d.symbol.section?.name },
        why: 'the livepatch carries its own copy of a new variable: the patched code would use it while the rest of the kernel keeps using the existing one',
        hint: 'declare the existing variable `extern` instead of defining it again, or give the new variable a name of its own (static if only the patched file uses it)',
        ...(d.users.length ? { detail: [`used by: ${d.users.join(', ')}`] } : {}),
      }));
  },
};

/*
 * Rule KLP-INIT-CHANGED: init and exit code cannot be livepatched.
 *
 * Functions in `.init.text` ran once at boot and were freed afterwards; functions in `.exit.text` of
 * built-in code were never kept. Changing them has no effect on a running kernel, and a patch that
 * relies on the change (a different registration, a different initial value) would silently not
 * happen. The change has to come with a reboot into a fixed kernel, or be redone at patch load time.
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

const INIT_SECTIONS = /^\.(init|exit)\.text(\.|$)/;

export const initChanged: Rule = {
  id: 'KLP-INIT-CHANGED',
  title: 'changed init or exit code',
  check(facts: ObjectFacts): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const f of facts.functions) {
      if (f.change === 'same') continue;
      const section = f.symbol.section?.name ?? '';
      if (!INIT_SECTIONS.test(section)) continue;
      out.push({
        severity: 'error',
        code: this.id,
        message: `${f.change === 'new' ? 'new' : 'changed'} ${section.startsWith('.init') ? 'init' : 'exit'} function \`${f.name}\` (${section})`,
        location: { file: facts.patchedPath, symbol: f.name, section },
        why: 'init code ran once at boot and was freed; a livepatch cannot run it again or replace it',
        hint: 'if the effect is needed on running systems, redo it from the patch (a klp callback such as pre_patch); otherwise ship it in a kernel update',
        ...(f.reason ? { detail: [f.reason] } : {}),
      });
    }
    return out;
  },
};

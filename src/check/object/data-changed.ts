/*
 * Rule KLP-DATA-CHANGED: a livepatch replaces functions, never data.
 *
 * The running kernel keeps its own copy of every global and static variable, with the old size, the
 * old initial value and whatever state it has gathered since boot. A patch whose source changes a
 * variable's type, size or initializer would run new code against old data. Only functions can be
 * swapped; new state belongs in a shadow variable (klp_shadow_alloc / klp_shadow_get).
 */
import type { Diagnostic } from '../../diagnostic.js';
import type { ObjectFacts, Rule } from '../facts.js';

export const dataChanged: Rule = {
  id: 'KLP-DATA-CHANGED',
  title: 'changed global or static data',
  check(facts: ObjectFacts): Diagnostic[] {
    return facts.data
      .filter((d) => d.change === 'changed')
      .map((d) => ({
        severity: 'error' as const,
        code: this.id,
        message: `${d.writable ? 'variable' : 'constant data'} \`${d.originalName ?? d.name}\` changed: ${d.reason ?? 'contents differ'}`,
        location: { file: facts.patchedPath, symbol: d.name, section: d.symbol.section?.name },
        why: d.writable
          ? 'a livepatch replaces functions, not data: the running kernel keeps the variable with its old layout and state'
          : 'the running kernel and its unchanged functions keep using the old constant; a private copy would split its identity',
        hint: 'keep the data as it is and move new state into a shadow variable (klp_shadow_alloc/klp_shadow_get), or ship the change in a kernel update',
        ...(d.users.length ? { detail: [`used by: ${d.users.join(', ')}`] } : {}),
      }));
  },
};

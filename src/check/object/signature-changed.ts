/*
 * Rule KLP-SIGNATURE-CHANGED: a changed function whose prototype changed, called from outside the patch.
 *
 * The livepatch replaces the function's body, not its callers: every caller the patch does not carry
 * keeps calling it with the old arguments and expects the old return value. A new parameter type or
 * return type then reads garbage (a wider integer, a different struct, a missing argument). So when the
 * return or a parameter type differs between the original and the patched prototype (gcc's `-aux-info`,
 * parameter names ignored), the function must only be reachable from functions the patch replaces too:
 * a non-static function never is (any file of the kernel, or a module, may call it), a static one is
 * when every function of the file calling it is changed and carried, and no data (an ops table) holds
 * its address.
 */
import type { Diagnostic } from '../../diagnostic.js';
import { SHF, STB, STT } from '../../elf/constants.js';
import type { ElfObject, ElfSymbol } from '../../elf/model.js';
import type { FunctionDiff, ObjectFacts, Rule } from '../facts.js';

/** Names of what references `sym` from outside code sections (ops tables, exports, initcalls). */
function dataReferences(obj: ElfObject, sym: ElfSymbol): string[] {
  const out = new Set<string>();
  for (const s of obj.sections) {
    const target = s.infoSection;
    if (!s.relocations || !target || (target.flags & SHF.EXECINSTR) !== 0) continue; // code: callers
    if ((target.flags & SHF.ALLOC) === 0) continue; // debug info
    if (/^(__mcount_loc|__patchable_function_entries|\.orc_unwind_ip|\.discard)/.test(target.name)) continue;
    for (const r of s.relocations) {
      const t = r.symbol;
      if (!t) continue;
      const hit =
        t === sym ||
        (t.type === STT.SECTION && t.section === sym.section && Number(r.addend) === Number(sym.value));
      if (hit) out.add(target.name);
    }
  }
  return [...out].sort();
}

/** Base name the running kernel knows the function by (`foo.isra.0` → `foo`). */
const baseName = (n: string) => n.replace(/\.(isra|constprop|part|cold|llvm)\.\d+.*$/, '');

export const signatureChanged: Rule = {
  id: 'KLP-SIGNATURE-CHANGED',
  title: 'changed prototype of a function called from outside the patch',
  check(facts: ObjectFacts): Diagnostic[] {
    const protos = facts.prototypes;
    if (!protos) return [];
    const carried = new Set(
      facts.functions.filter((f) => f.change !== 'same').flatMap((f) => [f.name, f.originalName ?? f.name]),
    );
    const out: Diagnostic[] = [];
    for (const f of facts.functions) {
      if (f.change !== 'changed' || f.parent) continue;
      const name = baseName(f.originalName ?? f.name);
      const before = protos.original.get(name);
      const after = protos.patched.get(name);
      if (!before || !after || before.signature === after.signature) continue;
      const reasons = outsideCallers(f, facts, carried);
      if (reasons.length === 0) continue;
      out.push({
        severity: 'error',
        code: this.id,
        message: `the prototype of \`${name}\` changed, and it is called from outside the patch`,
        location: { file: facts.originalPath, symbol: name, ...(before.line ? { line: before.line } : {}) },
        detail: [`before: ${before.text}`, `after:  ${after.text}`, ...reasons],
        why: 'a livepatch replaces the function, not its callers: callers in the running kernel would still pass the old arguments and read the old return type',
        hint: 'keep the prototype and change only the body, or add a new function with the new prototype (the patch carries new static functions) and call it from the changed callers',
      });
    }
    return out;
  },
};

function outsideCallers(f: FunctionDiff, facts: ObjectFacts, carried: Set<string>): string[] {
  const sym = f.twin ?? f.symbol;
  if (sym.bind !== STB.LOCAL) {
    return [
      `it is ${sym.bind === STB.WEAK ? 'weak' : 'global'}: any file of the kernel or a module may call it`,
    ];
  }
  const reasons: string[] = [];
  const outside = f.callers.filter((c) => !carried.has(c) && baseName(c) !== baseName(f.name));
  if (outside.length) reasons.push(`callers the patch does not replace: ${outside.join(', ')}`);
  const tables = dataReferences(facts.patched, f.symbol);
  if (tables.length) reasons.push(`its address is taken in data: ${tables.join(', ')}`);
  return reasons;
}

/*
 * What the carried-code rules look at: the functions the diff object carries that are entered on their
 * own (not `.cold` parts or `__pfx_` prefixes, unless their address is taken), and their bytes and
 * relocations in the patched object.
 */
import { STT } from '../../elf/constants.js';
import type { ElfObject, ElfRelocation, ElfSymbol } from '../../elf/model.js';
import type { FunctionDiff, ObjectFacts } from '../facts.js';

/** The relocations applying inside `f` (offsets relative to the section). */
export function relocationsOf(obj: ElfObject, f: ElfSymbol): ElfRelocation[] {
  if (!f.section) return [];
  const start = f.value;
  const end = f.value + BigInt(f.size);
  return obj
    .relocationsFor(f.section)
    .flatMap((s) => s.relocations ?? [])
    .filter((r) => r.offset >= start && r.offset < end);
}

/** Code and program data: where a function pointer can be taken (not the kernel's tables about code). */
const POINTER_HOLDERS = /^\.(text|data|rodata|init\.data|ref\.data)(\.|$)/;

/** Whether code or data of `obj` takes the address of `f` other than as a direct call or jump target. */
function addressTaken(obj: ElfObject, f: ElfSymbol): boolean {
  for (const rs of obj.sections) {
    if (!rs.relocations || !rs.infoSection || !POINTER_HOLDERS.test(rs.infoSection.name)) continue;
    const code = rs.infoSection.data;
    for (const r of rs.relocations) {
      const hit =
        r.symbol === f ||
        (r.symbol?.type === STT.SECTION && r.symbol.section === f.section && r.addend === f.value);
      if (!hit) continue;
      const op = code[Number(r.offset) - 1];
      const branch = (op === 0xe8 || op === 0xe9) && r.addend === -4n;
      if (!branch) return true;
    }
  }
  return false;
}

/** Carried functions entered from outside: whole functions, and any part whose address is taken. */
export function enteredFunctions(facts: ObjectFacts): FunctionDiff[] {
  return facts.functions.filter(
    (f) => f.included && f.symbol.section && (!f.parent || addressTaken(facts.patched, f.symbol)),
  );
}

/** The bytes of a function in the patched object. */
export function bytesOf(f: ElfSymbol): Uint8Array {
  const at = Number(f.value);
  return f.section ? f.section.data.subarray(at, at + f.size) : new Uint8Array(0);
}

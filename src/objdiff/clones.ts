/*
 * Compiler clones: when a changed `.isra.N` / `.constprop.N` / `.part.N` function can be replaced.
 *
 * A clone has a calling convention only the compiler knows: which parameters it takes (IPA-SRA drops
 * and scalarizes them, IPA-CP folds constants in, a `.part` tail takes what its split-off head passes),
 * whether it returns a value, even which registers it clobbers (IPA-RA). The patched build may decide
 * differently, so the new body's convention cannot be read off the clone itself. It can be read off
 * its callers. Once the livepatch is applied, a task runs the old clone only through a caller of the
 * running kernel that still runs, and every such caller is one of:
 *   - a caller replaced by the patch (its twin is carried): a patched task runs the new caller, which
 *     calls the new clone in the module with the convention the same compile gave both; an unpatched
 *     task runs the old caller and, through ftrace, the old clone (the consistency model keeps them
 *     apart), so the old convention never meets the new body;
 *   - a caller unchanged by the patch: its bytes and its relocations' targets are the same in both
 *     builds, so it sets up the arguments, reads the result and keeps registers live across the call
 *     exactly as the patched build's copy does, which the compiler made to fit the new clone: what the
 *     running kernel's copy passes to the old clone (and ftrace hands to the new one) is what the new
 *     clone was compiled to receive.
 * Any other caller breaks the proof: a function of the original object that calls the old clone and
 * has no twin in the patched one (the running kernel keeps calling the old clone from it), a caller
 * neither unchanged nor carried, or the clone's address stored in data (callers we cannot see). Callers
 * of the patched clone are checked the same way; a caller that no longer calls the clone is changed,
 * so carried, so it needs no check of its own. The proof is recorded on the record (`clone`); the rule
 * KLP-RENAMED-SYMBOL (check/object/renamed-symbol.ts) refuses when it names a breaker.
 */
import type { CloneProof, FunctionDiff } from '../check/facts.js';
import { STT } from '../elf/constants.js';
import type { ElfSymbol } from '../elf/model.js';
import { relocationsIn, resolveTarget } from './compare.js';
import { symbolKey } from './correlate.js';
import type { DiffSides } from './verdicts.js';
import { isDataSection } from './verdicts.js';

const CLONE_KINDS = /(^|\.)(isra|constprop|part)(\.|$)/;

/** The clone kinds of a name (`isra`, `constprop.isra`), or undefined when it is no compiler clone. */
export function cloneKind(name: string): string | undefined {
  const { kinds } = symbolKey(name);
  return CLONE_KINDS.test(kinds) ? kinds : undefined;
}

/** The functions (by name) of the original object that reference `target`, and data sections storing it. */
function originalUsers(sides: DiffSides, target: ElfSymbol): { callers: ElfSymbol[]; data: string[] } {
  const callers = new Set<ElfSymbol>();
  const data = new Set<string>();
  const canon = (s: ElfSymbol) => s.name;
  for (const f of sides.original.symbols) {
    if (f.type !== STT.FUNC || !f.section || f === target) continue;
    const start = Number(f.value);
    for (const rel of relocationsIn(sides.original, f.section, start, start + (f.size || f.section.size)))
      if (resolveTarget(rel, sides.oMap, canon).symbol === target) callers.add(f);
  }
  for (const s of sides.original.sections) {
    if (!isDataSection(s)) continue;
    if (relocationsIn(sides.original, s).some((r) => resolveTarget(r, sides.oMap, canon).symbol === target))
      data.add(s.name);
  }
  return { callers: [...callers], data: [...data] };
}

/** Whether a patched function's record lets a caller of the clone stand: unchanged, or carried. */
function stands(record: FunctionDiff | undefined): boolean {
  return record !== undefined && (record.change === 'same' || record.included);
}

/** The proof for one changed clone (its record already marked `included` by the selection). */
function prove(sides: DiffSides, f: FunctionDiff, records: Map<ElfSymbol, FunctionDiff>): CloneProof {
  const kind = cloneKind(f.originalName ?? f.name) ?? cloneKind(f.name) ?? '';
  const byName = new Map([...records.values()].map((r) => [r.name, r]));
  const own = (name: string) => name.startsWith(`${f.name}.cold`);
  const twin = f.twin;
  if (twin) {
    const users = originalUsers(sides, twin);
    if (users.data.length)
      return {
        kind,
        breaker: users.data[0]!,
        why: 'its address is stored in data: callers this object does not show',
      };
    for (const c of users.callers) {
      if (c.name.startsWith(`${twin.name}.cold`)) continue;
      const p = sides.corr.toPatched.get(c);
      if (!p)
        return {
          kind,
          breaker: c.name,
          why: 'calls the clone in the running kernel but is gone from the patched object, so nothing replaces it',
        };
      if (!stands(records.get(p)))
        return {
          kind,
          breaker: c.name,
          why: 'calls the clone but is neither unchanged nor carried by the patch',
        };
    }
  }
  for (const name of f.callers) {
    if (own(name)) continue;
    if (!stands(byName.get(name)))
      return {
        kind,
        breaker: name,
        why: 'calls the patched clone but is neither unchanged nor carried by the patch',
      };
  }
  return { kind };
}

/** Record the proof on every changed function that is, or was, a compiler clone. */
export function proveClones(sides: DiffSides, functions: FunctionDiff[]): void {
  const records = new Map(functions.map((f) => [f.symbol, f]));
  for (const f of functions) {
    if (f.change !== 'changed' || f.parent) continue;
    if (!cloneKind(f.originalName ?? f.name) && !cloneKind(f.name)) continue;
    f.clone = prove(sides, f, records);
  }
}

/**
 * The running kernel's name of a clone whose number differs from our compile's: among the shipped
 * names of the same file, the one with the same base name and clone kinds, when there is exactly one.
 */
export function shippedCloneName(name: string, shipped: Iterable<string>): string | undefined {
  const kind = cloneKind(name);
  if (!kind) return undefined;
  const { base } = symbolKey(name);
  const hits = [...shipped].filter((s) => {
    const k = symbolKey(s);
    return k.base === base && k.kinds === kind;
  });
  return hits.length === 1 ? hits[0] : undefined;
}

/*
 * sympos: which of several same-named symbols of an object the livepatch core means.
 *
 * klp_func.old_sympos and the `,<sympos>` of a klp symbol count same-named symbols of the running
 * object the way the kernel's kallsyms walk does (elf/ computes it per symbol). For a local of the
 * patched file the count comes from its own STT_FILE group in the shipped binary: the group the verify
 * stage matched (source/verify.ts), or, when no verify stage ran, the group verify's comparison picks.
 */
import { basename } from 'node:path';
import type { ElfObject } from '../elf/model.js';
import type { SymbolIndex } from '../elf/symbol-index.js';
import { compareWithShipped, objectFunctions, shippedFromIndex } from '../source/verify.js';

/** The shipped file group of a translation unit, chosen as verify chooses it. */
export function fileGroup(index: SymbolIndex, source: string, original: ElfObject): number | undefined {
  return compareWithShipped(objectFunctions(original), shippedFromIndex(index), basename(source)).group;
}

/** sympos of each symbol of a unit's file group, by name. */
export function fileSympos(
  index: SymbolIndex,
  source: string,
  group: number | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  const g = group === undefined ? undefined : index.localsInFile(basename(source))[group];
  for (const s of g?.symbols ?? []) out.set(s.name, s.sympos);
  return out;
}

/*
 * Writing the diff object of an objdiff result to disk.
 *
 * Kept apart from objdiff.ts so that comparing never writes anything: only a result without refusals
 * becomes a diff object, and the livepatch module builder picks the names its external references get.
 */
import { writeFile } from 'node:fs/promises';
import { fail } from '../diagnostic.js';
import type { ElfObject } from '../elf/model.js';
import { writeElf } from '../elf/writer.js';
import { SymbolMap } from './compare.js';
import type { ObjectDiff } from './objdiff.js';
import { buildDiffObject, type DiffObjectOptions } from './select.js';

/** The diff object as a model; throws OBJDIFF-REFUSED when the comparison refused anything. */
export function diffObjectOf(diff: ObjectDiff, opts: DiffObjectOptions = {}): ElfObject {
  if (diff.refusals.length)
    fail(
      'OBJDIFF-REFUSED',
      `${diff.patchedPath}: ${diff.refusals.length} change(s) cannot be carried by a livepatch`,
      {
        detail: diff.refusals.map((r) => `${r.code}: ${r.message}`),
        hint: 'fix the refusals listed above; no diff object is written while any remain',
      },
    );
  const patched = diff.facts.patched;
  const corr = new Map(
    diff.facts.functions.filter((f) => f.original).map((f) => [f.symbol, f.original!] as const),
  );
  for (const d of diff.facts.data) if (d.original) corr.set(d.symbol, d.original);
  const canon = (s: Parameters<typeof corr.get>[0]) => corr.get(s)?.name ?? `new:${s.name}`;
  return buildDiffObject(patched, diff.selection, new SymbolMap(patched), canon, opts);
}

export async function writeDiffObject(
  diff: ObjectDiff,
  path: string,
  opts: DiffObjectOptions = {},
): Promise<ElfObject> {
  const obj = diffObjectOf(diff, opts);
  await writeFile(path, writeElf(obj));
  return obj;
}

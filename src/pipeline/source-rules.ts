/*
 * The source rules the pipeline runs beside the object diff: those that read the diff and the
 * original and patched sources rather than objects (KLP-STRUCT-CHANGED, KLP-SYSCALL-NOT-IN-FILE).
 * Their refusals join the object rules' at the end of the objdiff stage.
 */
import { readFileSync } from 'node:fs';
import { structChanged } from '../check/source/struct-changed.js';
import { syscallNotInFile } from '../check/source/syscall-not-in-file.js';
import type { Diagnostic } from '../diagnostic.js';
import { type AppliedFile, changedSources, type SourceDiff } from '../source/diff.js';

/** Every refusal of the source rules for this diff, as applied to the tree. */
export function sourceRefusals(diff: SourceDiff, tree: string, applied: AppliedFile[]): Diagnostic[] {
  const changedC = applied.flatMap((a) =>
    a.original && a.patched && a.path.endsWith('.c')
      ? [
          {
            path: a.path,
            original: readFileSync(a.original, 'utf8'),
            patched: readFileSync(a.patched, 'utf8'),
          },
        ]
      : [],
  );
  return [...structChanged(changedSources(diff, tree, applied)), ...syscallNotInFile.check(changedC)];
}

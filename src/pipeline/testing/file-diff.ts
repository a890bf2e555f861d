/*
 * Test support: a diff of one file of a kernel tree as `suture build` reads it, with git's a/ and b/
 * prefixes and no `Index:` header, made from the file's text before and after an edit. Sections of
 * several files concatenate into one diff.
 */
import { createPatch } from 'diff';

/** The diff of `file` (a path in the tree) from `original` to `changed`. */
export function fileDiff(file: string, original: string, changed: string): string {
  return createPatch(file, original, changed)
    .replace(/^Index: .*\n=+\n/, '')
    .replace(/^--- (.*)$/m, '--- a/$1')
    .replace(/^\+\+\+ (.*)$/m, '+++ b/$1');
}

/*
 * The strip level (`patch -pN`) of a diff: how many leading path components to drop so that its paths
 * name files of the kernel source tree.
 *
 * `git diff` writes `a/fs/proc/meminfo.c` (p1), `diff -ru linux-6.1.187.orig linux-6.1.187` writes
 * `linux-6.1.187/fs/proc/meminfo.c` (p1 too), a diff made inside the tree writes `fs/proc/meminfo.c`
 * (p0), and one made from a home directory `src/linux-6.1.187/fs/...` (p2) or with absolute paths
 * deeper still. Like `patch`, one level holds for the whole diff; it is the smallest level at which
 * every file the diff modifies or deletes exists in the tree (and every file it adds has an existing
 * parent directory, when that is all there is). Without a tree, git's `a/`/`b/` prefixes mean p1.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

/** The deepest strip level tried. */
const MAX_STRIP = 8;

export interface RawPaths {
  /** the `---` path, `/dev/null` for an added file */
  old: string;
  /** the `+++` path, `/dev/null` for a deleted file */
  new: string;
}

/** The path as written in a `---`/`+++` line: without the timestamp, quotes and `./`. */
export function rawPath(field: string): string {
  let p = field.split('\t')[0]!.trim();
  if (p.startsWith('"') && p.endsWith('"')) p = p.slice(1, -1);
  if (p === '/dev/null') return p;
  return p.replace(/^(\.\/)+/, '');
}

/** `path` without its first `n` components (as `patch -pN` strips: a leading `/` counts as one). */
export function stripPath(path: string, n: number): string | undefined {
  if (path === '/dev/null') return path;
  const parts = path.split('/');
  // `patch` counts the empty component before a leading slash, and collapses repeated slashes
  const kept = parts.slice(0, 1).concat(parts.slice(1).filter((c) => c !== ''));
  if (n >= kept.length) return undefined;
  const rest = kept.slice(n).join('/');
  return rest === '' ? undefined : normalize(rest);
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** The strip level of the whole diff (see the file comment). */
export function detectStrip(files: RawPaths[], tree?: string): number {
  const gitStyle = files.every(
    (f) =>
      (f.old === '/dev/null' || f.old.startsWith('a/')) && (f.new === '/dev/null' || f.new.startsWith('b/')),
  );
  const fallback = gitStyle ? 1 : 0;
  if (!tree || files.length === 0) return fallback;
  const existing = files.filter((f) => f.old !== '/dev/null').map((f) => f.old);
  const added = files.filter((f) => f.old === '/dev/null').map((f) => f.new);
  const fits = (n: number, paths: string[], test: (p: string) => boolean) =>
    paths.every((p) => {
      const s = stripPath(p, n);
      return s !== undefined && !s.startsWith('..') && test(join(tree, s));
    });
  for (let n = 0; n <= MAX_STRIP; n++) {
    if (existing.length && fits(n, existing, isFile)) return n;
    if (!existing.length && fits(n, added, (p) => isDir(dirname(p)))) return n;
  }
  return fallback;
}

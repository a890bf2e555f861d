/*
 * The source diff: what the kernel engineer changed, and the patched tree it produces.
 *
 * A livepatch starts from a unified diff — `git diff`/`git format-patch` output (`a/` and `b/` prefixes,
 * `diff --git` headers, mail headers before the first file) or a plain `diff -u`/`diff -ruN` against the
 * kernel source. `parseDiff` turns the text into files and hunks (or a DIFF-MALFORMED error naming the
 * line); `applyDiff` applies it with GNU patch to COPIES of the touched files under a scratch overlay
 * directory, never to the prepared tree itself. A hunk that does not apply exactly (offsets are fine,
 * fuzz is not: a fuzzy hunk could land in the wrong function of a running kernel) is a DIFF-HUNK-FAILED
 * error that shows the hunk and the file.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import type { ChangedSource } from '../check/source/struct-changed.js';
import { fail } from '../diagnostic.js';

export interface Hunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** text after the second `@@` (usually the enclosing function, as `diff -p` prints it) */
  section: string;
  /** the hunk's body lines, each starting with ' ', '-', '+' or '\' */
  lines: string[];
  /** 1-based line of the `@@` header in the diff text */
  diffLine: number;
}

export type FileChangeKind = 'modify' | 'add' | 'delete';

export interface FileDiff {
  /** path relative to the kernel source root, prefixes stripped, e.g. `fs/proc/meminfo.c` */
  path: string;
  kind: FileChangeKind;
  hunks: Hunk[];
  /** the file's part of the diff text (headers + hunks), as fed to patch */
  text: string;
}

export interface SourceDiff {
  files: FileDiff[];
  /** where the diff came from, for messages */
  origin: string;
}

const HUNK_RE = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$/;

/** Strip `a/`, `b/` (git) or any one leading component when the tree says the path lives below it. */
function cleanPath(raw: string, tree: string | undefined): string {
  let p = raw.split('\t')[0]!.trim();
  if (p.startsWith('"') && p.endsWith('"')) p = p.slice(1, -1);
  if (p === '/dev/null') return p;
  if (p.split('/').includes('..')) return p; // refused by the caller: it leaves the tree
  p = normalize(p).replace(/^(\.\/)+/, '');
  if (p.startsWith('a/') || p.startsWith('b/')) {
    const rest = p.slice(2);
    if (!tree || existsSync(join(tree, rest)) || !existsSync(join(tree, p))) return rest;
  }
  if (tree && !existsSync(join(tree, p))) {
    // plain diffs made with `diff -ru linux-6.1.orig linux-6.1`: drop the top directory
    const slash = p.indexOf('/');
    if (slash > 0 && existsSync(join(tree, p.slice(slash + 1)))) return p.slice(slash + 1);
  }
  return p;
}

/** The hunk whose `@@` header is at `lines[at]`, and the index of the line after it. */
function readHunk(
  lines: string[],
  at: number,
  malformed: (lineNo: number, message: string) => never,
): { hunk: Hunk; next: number } {
  let i = at;
  const m = HUNK_RE.exec(lines[i]!);
  if (!m) malformed(i + 1, 'unreadable hunk header');
  const h: Hunk = {
    oldStart: Number(m![1]),
    oldLines: m![2] === undefined ? 1 : Number(m![2]),
    newStart: Number(m![3]),
    newLines: m![4] === undefined ? 1 : Number(m![4]),
    section: m![5] ?? '',
    lines: [],
    diffLine: i + 1,
  };
  i++;
  let oldSeen = 0;
  let newSeen = 0;
  while (oldSeen < h.oldLines || newSeen < h.newLines || lines[i]?.startsWith('\\')) {
    const l = lines[i];
    if (l === undefined) malformed(i, `hunk at line ${h.diffLine} ends early (the diff is truncated)`);
    const c = l!.charAt(0);
    if (c === ' ' || l === '') {
      oldSeen++;
      newSeen++;
    } else if (c === '-') oldSeen++;
    else if (c === '+') newSeen++;
    else if (c !== '\\') {
      malformed(i + 1, `hunk at line ${h.diffLine} has fewer lines than its header says`);
    }
    h.lines.push(l === '' ? ' ' : l!);
    i++;
  }
  if (oldSeen !== h.oldLines || newSeen !== h.newLines) {
    malformed(h.diffLine, 'hunk line counts do not match its header');
  }
  return { hunk: h, next: i };
}

/**
 * Parse unified diff text. `tree` (optional) is used to decide how many leading path components to
 * strip for plain diffs. Throws DIFF-MALFORMED / DIFF-EMPTY.
 */
export function parseDiff(text: string, origin = 'diff', tree?: string): SourceDiff {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const files: FileDiff[] = [];
  let i = 0;
  const malformed = (lineNo: number, message: string, hint?: string): never =>
    fail('DIFF-MALFORMED', message, {
      location: { file: origin, line: lineNo },
      detail: [lines[lineNo - 1] ?? ''],
      hint:
        hint ?? 'give a unified diff (`git diff`, `git format-patch` or `diff -u`), not a context or ed diff',
    });
  while (i < lines.length) {
    const line = lines[i]!;
    if (!line.startsWith('--- ') || !(lines[i + 1] ?? '').startsWith('+++ ')) {
      if (line.startsWith('@@ ')) malformed(i + 1, 'hunk without a `---`/`+++` file header');
      i++;
      continue;
    }
    // look back for a `diff --git` line belonging to this file, to include it in the text
    let start = i;
    for (let j = i - 1; j >= 0 && j >= i - 8; j--) {
      const l = lines[j]!;
      if (l.startsWith('diff ')) {
        start = j;
        break;
      }
      if (l.startsWith('--- ') || l.startsWith('+') || l.startsWith('-') || l.startsWith(' ')) break;
    }
    const oldRaw = line.slice(4);
    const newRaw = lines[i + 1]!.slice(4);
    const oldPath = cleanPath(oldRaw, tree);
    const newPath = cleanPath(newRaw, tree);
    const kind: FileChangeKind =
      oldPath === '/dev/null' ? 'add' : newPath === '/dev/null' ? 'delete' : 'modify';
    const path = kind === 'add' ? newPath : oldPath;
    if (path.startsWith('/') || path.split('/').includes('..')) {
      malformed(
        i + 1,
        `path \`${path}\` leaves the kernel source tree`,
        'paths must be relative to the source root',
      );
    }
    i += 2;
    const hunks: Hunk[] = [];
    while (i < lines.length && lines[i]!.startsWith('@@')) {
      const h = readHunk(lines, i, malformed);
      hunks.push(h.hunk);
      i = h.next;
    }
    if (hunks.length === 0) malformed(i, `no hunks for \`${path}\``);
    files.push({ path, kind, hunks, text: `${lines.slice(start, i).join('\n')}\n` });
  }
  if (files.length === 0) {
    fail('DIFF-EMPTY', `${origin} contains no file changes`, {
      location: { file: origin },
      hint: 'give a unified diff with `---`/`+++` file headers and `@@` hunks',
    });
  }
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) {
      fail('DIFF-MALFORMED', `\`${f.path}\` appears twice in ${origin}`, {
        location: { file: origin },
        hint: 'combine the changes to one file into one diff section (e.g. `git diff A..B`)',
      });
    }
    seen.add(f.path);
  }
  return { files, origin };
}

export interface AppliedFile {
  path: string;
  kind: FileChangeKind;
  /** the untouched file in the prepared tree (absent for added files) */
  original?: string;
  /** the patched copy under the overlay (absent for deleted files) */
  patched?: string;
  /** patch's remarks, e.g. `Hunk #1 succeeded at 131 (offset 3 lines).` */
  notes: string[];
}

/**
 * Apply `diff` to copies of the touched files of `tree`, written under `overlay` at the same relative
 * paths. The tree is only read. Throws DIFF-FILE-MISSING or DIFF-HUNK-FAILED (showing the hunk).
 */
export function applyDiff(diff: SourceDiff, tree: string, overlay: string): AppliedFile[] {
  const out: AppliedFile[] = [];
  for (const f of diff.files) {
    const original = join(tree, f.path);
    const patched = join(overlay, f.path);
    if (f.kind !== 'add' && !(existsSync(original) && statSync(original).isFile())) {
      fail('DIFF-FILE-MISSING', `\`${f.path}\` does not exist in the kernel source`, {
        location: { file: diff.origin, line: f.hunks[0]?.diffLine },
        why: 'the diff must be made against the exact source of the target kernel',
        hint: `check the path and that the diff is for this kernel version (source tree: ${tree})`,
      });
    }
    if (f.kind === 'add' && existsSync(original)) {
      fail('DIFF-MALFORMED', `the diff creates \`${f.path}\`, which already exists in the kernel source`, {
        location: { file: diff.origin, line: f.hunks[0]?.diffLine },
        hint: 'make the diff against the target kernel source',
      });
    }
    mkdirSync(dirname(patched), { recursive: true });
    if (f.kind !== 'add') copyFileSync(original, patched);
    const r = spawnSync(
      'patch',
      [
        '--batch',
        '--forward',
        '--fuzz=0',
        '--no-backup-if-mismatch',
        '--reject-file=-',
        '-p0',
        '--',
        patched,
      ],
      { input: stripToHunks(f), encoding: 'utf8' },
    );
    if (r.error) {
      fail('DIFF-PATCH-MISSING', `cannot run GNU patch: ${r.error.message}`, {
        hint: 'install it: apt-get install patch',
      });
    }
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const notes = output
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^Hunk #\d+ /.test(l));
    if (r.status !== 0) {
      const failed = notes.find((n) => /FAILED/.test(n));
      const n = failed ? Number(/^Hunk #(\d+)/.exec(failed)![1]) : 1;
      const h = f.hunks[n - 1] ?? f.hunks[0]!;
      const at = failed ? /at (\d+)/.exec(failed)?.[1] : undefined;
      fail('DIFF-HUNK-FAILED', `hunk #${n} of \`${f.path}\` does not apply to the kernel source`, {
        location: { file: f.path, line: at ? Number(at) : h.oldStart },
        detail: [
          `@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@ ${h.section}`.trimEnd(),
          ...h.lines,
          ...(output.trim()
            ? [
                '',
                ...output
                  .trim()
                  .split('\n')
                  .map((l) => `patch: ${l}`),
              ]
            : []),
        ],
        why: 'the context or removed lines of this hunk are not in the target kernel source (exact match required: a fuzzy hunk could land in the wrong place)',
        hint: `regenerate the diff against the source of this exact kernel (${tree}/${f.path}, from diff line ${h.diffLine})`,
      });
    }
    out.push({
      path: f.path,
      kind: f.kind,
      original: f.kind === 'add' ? undefined : original,
      patched: f.kind === 'delete' ? undefined : patched,
      notes,
    });
  }
  return out;
}

/** The hunks of one file, without headers: patch is told the file on its command line. */
function stripToHunks(f: FileDiff): string {
  const body: string[] = [];
  for (const h of f.hunks) {
    body.push(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...h.lines);
  }
  const header = f.kind === 'add' ? ['--- /dev/null', `+++ ${f.path}`] : [`--- ${f.path}`, `+++ ${f.path}`];
  return `${[...header, ...body].join('\n')}\n`;
}

/** Read and parse a diff file (DIFF-UNREADABLE if it cannot be read). */
/** The C files and headers the diff modifies, with their original text: what KLP-STRUCT-CHANGED reads. */
export function changedSources(diff: SourceDiff, tree: string): ChangedSource[] {
  return diff.files
    .filter((f) => f.kind === 'modify' && /\.[ch]$/.test(f.path) && existsSync(join(tree, f.path)))
    .map((f) => ({ path: f.path, original: readFileSync(join(tree, f.path), 'utf8'), hunks: f.hunks }));
}

export function readDiff(path: string, tree?: string): { diff: SourceDiff; text: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail('DIFF-UNREADABLE', `cannot read ${path}: ${(e as Error).message}`, {
      location: { file: path },
      hint: 'give the path of a unified diff file',
    });
  }
  return { diff: parseDiff(text, path, tree), text };
}

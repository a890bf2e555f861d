/*
 * The source diff: what the kernel engineer changed, and the patched tree it produces.
 *
 * A livepatch starts from a unified diff — `git diff`/`git format-patch` output (`a/` and `b/` prefixes,
 * `diff --git` headers, mail headers before the first file) or a plain `diff -u`/`diff -ruN` against the
 * kernel source, made at any depth (the strip level `-pN` is detected against the tree, strip-level.ts).
 * `parseDiff` turns the text into files and hunks (or a DIFF-MALFORMED error naming the line);
 * `applyDiff` applies it as GNU patch does (gnu-patch.ts) to COPIES of the touched files under a scratch
 * overlay directory, never to the prepared tree itself:
 *   - a hunk that lands at an offset is applied, with a DIFF-OFFSET warning naming where;
 *   - a hunk that needs fuzz is refused (DIFF-FUZZ, with the line it would land on) unless the caller
 *     allows that much fuzz (`--fuzz N`, N ≤ 3), then it is applied with a DIFF-FUZZ warning;
 *   - a hunk that does not apply even with fuzz 3 is a DIFF-HUNK-FAILED error showing the hunk;
 *   - an added file is created in the overlay; a deleted file is left out of it (units.ts decides
 *     whether anything compiled still needs it).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { refuse } from '../check/refusal.js';
import { diffFuzz, MAX_FUZZ } from '../check/source/diff-fuzz.js';
import { diffOffset } from '../check/source/diff-offset.js';
import type { ChangedSource } from '../check/source/struct-changed.js';
import { type Diagnostic, fail } from '../diagnostic.js';
import { type HunkReport, runPatch } from './gnu-patch.js';
import { detectStrip, type RawPaths, rawPath, stripPath } from './strip-level.js';

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
  /** leading path components stripped from its paths, as `patch -pN` (strip-level.ts) */
  strip: number;
}

const HUNK_RE = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$/;

/** One file section as read, before its paths are stripped. */
interface RawFile extends RawPaths {
  hunks: Hunk[];
  text: string;
  /** 1-based line of its `---` header */
  headerLine: number;
}

/**
 * Parse unified diff text. `tree` (optional) is used to detect the strip level (how many leading path
 * components to drop). Throws DIFF-MALFORMED / DIFF-EMPTY.
 */
export function parseDiff(text: string, origin = 'diff', tree?: string): SourceDiff {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const malformed = (lineNo: number, message: string, hint?: string): never =>
    fail('DIFF-MALFORMED', message, {
      location: { file: origin, line: lineNo },
      detail: [lines[lineNo - 1] ?? ''],
      hint:
        hint ?? 'give a unified diff (`git diff`, `git format-patch` or `diff -u`), not a context or ed diff',
    });
  const raws = readSections(lines, malformed);
  if (raws.length === 0) {
    fail('DIFF-EMPTY', `${origin} contains no file changes`, {
      location: { file: origin },
      hint: 'give a unified diff with `---`/`+++` file headers and `@@` hunks',
    });
  }
  const strip = detectStrip(raws, tree);
  const files: FileDiff[] = raws.map((r) => {
    const kind: FileChangeKind = r.old === '/dev/null' ? 'add' : r.new === '/dev/null' ? 'delete' : 'modify';
    const written = kind === 'add' ? r.new : r.old;
    const path = stripPath(written, strip);
    if (path === undefined) {
      return malformed(
        r.headerLine,
        `path \`${written}\` has fewer than ${strip + 1} components (-p${strip})`,
      );
    }
    if (path.startsWith('/') || path.split('/').includes('..')) {
      malformed(
        r.headerLine,
        `path \`${path}\` leaves the kernel source tree`,
        'paths must be relative to the source root',
      );
    }
    return { path, kind, hunks: r.hunks, text: r.text };
  });
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
  return { files, origin, strip };
}

/** The file sections of a diff: raw paths, hunks and each section's own text. */
function readSections(lines: string[], malformed: (line: number, message: string) => never): RawFile[] {
  const out: RawFile[] = [];
  let i = 0;
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
    const headerLine = i + 1;
    const paths = { old: rawPath(line.slice(4)), new: rawPath(lines[i + 1]!.slice(4)) };
    i += 2;
    const hunks: Hunk[] = [];
    while (i < lines.length && lines[i]!.startsWith('@@')) {
      const h = readHunk(lines, i, malformed);
      hunks.push(h);
      i = h.diffLine + h.lines.length;
    }
    if (hunks.length === 0)
      malformed(i, `no hunks for \`${paths.new === '/dev/null' ? paths.old : paths.new}\``);
    out.push({ ...paths, hunks, text: `${lines.slice(start, i).join('\n')}\n`, headerLine });
  }
  return out;
}

/** The hunk whose `@@` header is at index `i`. */
function readHunk(lines: string[], i: number, malformed: (line: number, message: string) => never): Hunk {
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
  return h;
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
  /** the hunks where they landed: `oldStart` moved by each hunk's offset (absent: as in the diff) */
  hunks?: Hunk[];
  /** DIFF-OFFSET and (allowed) DIFF-FUZZ warnings, one per hunk that did not land exactly */
  warnings?: Diagnostic[];
}

export interface ApplyOptions {
  /** context lines a hunk may ignore, as `patch --fuzz` (0 to 3; default 0) */
  fuzz?: number;
}

/** `--fuzz` as given by the user: an integer from 0 to 3, or DIFF-BAD-FUZZ. */
export function checkFuzz(fuzz: number | undefined): number {
  if (fuzz === undefined) return 0;
  if (!Number.isInteger(fuzz) || fuzz < 0 || fuzz > MAX_FUZZ) {
    fail('DIFF-BAD-FUZZ', `fuzz ${fuzz} is out of range`, {
      why: `beyond ${MAX_FUZZ} ignored context lines a hunk is matched by its changed lines alone, and can land anywhere they repeat`,
      hint: `give --fuzz 0 to ${MAX_FUZZ}, or regenerate the diff against this kernel's source`,
    });
  }
  return fuzz;
}

/**
 * Apply `diff` to copies of the touched files of `tree`, written under `overlay` at the same relative
 * paths. The tree is only read. Throws DIFF-FILE-MISSING, DIFF-HUNK-FAILED (showing the hunk), or the
 * DIFF-FUZZ refusal.
 */
export function applyDiff(
  diff: SourceDiff,
  tree: string,
  overlay: string,
  opts: ApplyOptions = {},
): AppliedFile[] {
  const fuzz = checkFuzz(opts.fuzz);
  const out: AppliedFile[] = [];
  for (const f of diff.files) {
    const original = join(tree, f.path);
    const patched = join(overlay, f.path);
    if (f.kind !== 'add' && !(existsSync(original) && statSync(original).isFile())) {
      fail('DIFF-FILE-MISSING', `\`${f.path}\` does not exist in the kernel source`, {
        location: { file: diff.origin, line: f.hunks[0]?.diffLine },
        why: 'the diff must be made against the exact source of the target kernel',
        hint: `check the path and that the diff is for this kernel version (source tree: ${tree}, paths stripped with -p${diff.strip})`,
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
    const input = stripToHunks(f);
    const run = runPatch(patched, input, fuzz);
    if (!run.ok) {
      rmSync(patched, { force: true });
      if (f.kind !== 'add') copyFileSync(original, patched);
      hunkFailed(f, tree, run, runPatch(patched, input, MAX_FUZZ, true).reports, fuzz);
    }
    if (f.kind === 'delete') rmSync(patched, { force: true });
    out.push({
      path: f.path,
      kind: f.kind,
      original: f.kind === 'add' ? undefined : original,
      patched: f.kind === 'delete' ? undefined : patched,
      notes: run.output
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => /^Hunk #\d+ /.test(l)),
      hunks: f.hunks.map((h, n) => {
        const r = run.reports.find((x) => x.hunk === n + 1);
        return r ? { ...h, oldStart: h.oldStart + r.offset } : h;
      }),
      warnings: run.reports.flatMap((r) => {
        if (!r.applied) return [];
        if (r.fuzz > 0) return [diffFuzz.accepted(fuzzyHunk(f, r))];
        return r.offset !== 0 ? [diffOffset.diagnose(f.path, r.hunk, r.line, r.offset)] : [];
      }),
    });
  }
  return out;
}

/**
 * Why patch failed on a file: the change is already there (DIFF-ALREADY-APPLIED); every failed hunk
 * would land with more fuzz (the DIFF-FUZZ refusal, naming the first and listing the others, with the
 * fuzz the worst needs); or a hunk lands nowhere (DIFF-HUNK-FAILED, showing it).
 */
function hunkFailed(
  f: FileDiff,
  tree: string,
  run: { reports: HunkReport[]; output: string },
  probe: HunkReport[],
  fuzz: number,
): never {
  const output = run.output.trim();
  const patchSaid = output ? ['', ...output.split('\n').map((l) => `patch: ${l}`)] : [];
  if (/Reversed \(or previously applied\) patch detected/.test(output)) {
    fail('DIFF-ALREADY-APPLIED', `the kernel source already has the change to \`${f.path}\``, {
      location: { file: f.path, line: f.hunks[0]?.oldStart },
      detail: patchSaid.slice(1),
      why: 'the lines the diff adds are already there: this kernel has the fix, or the diff is reversed',
      hint: "check the kernel's changelog for the fix; if the diff is reversed, swap its sides (diff -u old new)",
    });
  }
  const failed = run.reports.filter((r) => !r.applied);
  const landings = failed.map((r) => probe.find((p) => p.hunk === r.hunk && p.applied));
  const lost = failed.find((_, i) => !landings[i]) ?? (failed.length ? undefined : { hunk: 1, line: 0 });
  if (!lost) {
    const fuzzy = landings.map((l) => fuzzyHunk(f, l!));
    refuse(diffFuzz.refused(fuzzy[0]!, fuzz, fuzzy.slice(1)));
  }
  const n = lost!.hunk;
  const h = f.hunks[n - 1] ?? f.hunks[0]!;
  return fail('DIFF-HUNK-FAILED', `hunk #${n} of \`${f.path}\` does not apply to the kernel source`, {
    location: { file: f.path, line: lost!.line || h.oldStart },
    detail: [...hunkText(h), ...patchSaid],
    why: `the context or removed lines of this hunk are not in the target kernel source (not even ignoring ${MAX_FUZZ} context lines)`,
    hint: `regenerate the diff against the source of this exact kernel (${tree}/${f.path}, from diff line ${h.diffLine})`,
  });
}

function hunkText(h: Hunk): string[] {
  return [
    `@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@ ${h.section}`.trimEnd(),
    ...h.lines,
  ];
}

function fuzzyHunk(f: FileDiff, r: HunkReport) {
  const h = f.hunks[r.hunk - 1] ?? f.hunks[0]!;
  return { file: f.path, hunk: r.hunk, line: r.line, fuzz: r.fuzz, text: hunkText(h) };
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

/**
 * The C files and headers the diff modifies, with their original text: what KLP-STRUCT-CHANGED reads.
 * With `applied`, each file's hunks are where they landed (offsets), not where the diff said.
 */
export function changedSources(diff: SourceDiff, tree: string, applied?: AppliedFile[]): ChangedSource[] {
  return diff.files
    .filter((f) => f.kind === 'modify' && /\.[ch]$/.test(f.path) && existsSync(join(tree, f.path)))
    .map((f) => ({
      path: f.path,
      original: readFileSync(join(tree, f.path), 'utf8'),
      hunks: applied?.find((a) => a.path === f.path)?.hunks ?? f.hunks,
    }));
}

/** Read and parse a diff file (DIFF-UNREADABLE if it cannot be read). */
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

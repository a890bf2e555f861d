/*
 * Line-number stability: the patched compile keeps the original file's numbering.
 *
 * `__LINE__` is baked into code by WARN_ON/BUG_ON (the bug table entry), might_sleep (the line passed
 * to __might_sleep), lockdep and printk call sites. When a hunk adds or removes lines, every function
 * below it would differ only by those constants and look CHANGED. To prevent that, the patched copy of
 * each source file gets a `#line N "path"` directive after each hunk, restoring the numbering the
 * unchanged code has in the original file. The directive is only placed where a directive is safe: not
 * in a backslash-continued line (a macro body), not inside a comment, and only after a line that ends a
 * statement, a block or a directive (never inside a multi-line macro argument list); when the line right
 * after a hunk is not such a place, it moves down through the unchanged lines that follow.
 *
 * The mapping comes from comparing the original and patched texts (jsdiff), so it holds whatever diff
 * format, offsets or file the change came from.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { structuredPatch } from 'diff';
import type { AppliedFile } from './diff.js';

export interface LineDirective {
  /** 0-based index in the patched file's lines before which the directive is inserted */
  beforeLine: number;
  /** line number (1-based) the following line has in the original file */
  originalLine: number;
}

/** Lexical state at the end of each line: inside a block comment, or continued with a backslash. */
function lineStates(lines: readonly string[]): { inComment: boolean[]; continued: boolean[] } {
  const inComment: boolean[] = [];
  const continued: boolean[] = [];
  let comment = false;
  for (const line of lines) {
    let inStr: string | null = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (comment) {
        if (c === '*' && line[i + 1] === '/') {
          comment = false;
          i++;
        }
        continue;
      }
      if (inStr) {
        if (c === '\\') i++;
        else if (c === inStr) inStr = null;
        continue;
      }
      if (c === '"' || c === "'") inStr = c;
      else if (c === '/' && line[i + 1] === '*') {
        comment = true;
        i++;
      } else if (c === '/' && line[i + 1] === '/') break;
    }
    inComment.push(comment);
    continued.push(/\\\s*$/.test(line));
  }
  return { inComment, continued };
}

/** Would a directive after line `i` (0-based) be safe? */
function safeAfter(lines: readonly string[], i: number, st: ReturnType<typeof lineStates>): boolean {
  if (i < 0) return true;
  if (st.inComment[i] || st.continued[i]) return false;
  const code = lines[i]!.replace(/\/\/.*$/, '')
    .replace(/\/\*.*?\*\//g, '')
    .trim();
  if (code === '') {
    // a blank line is safe only if the previous non-blank line ends a statement
    for (let j = i - 1; j >= 0; j--) {
      if (lines[j]!.trim() !== '') return safeAfter(lines, j, st);
    }
    return true;
  }
  // the last line of a directive (possibly continued over several lines) ends it
  let first = i;
  while (first > 0 && st.continued[first - 1]) first--;
  if (lines[first]!.trim().startsWith('#')) return true;
  return /[;{}:]$/.test(code) || /\*\/$/.test(lines[i]!.trim());
}

/**
 * Where to put `#line` directives in `patched` so that every line outside the hunks keeps the number
 * it has in `original`.
 */
export function lineDirectives(original: string, patched: string): LineDirective[] {
  const p = structuredPatch('a', 'b', original, patched, '', '', { context: 0 });
  const newLines = patched.split('\n');
  const st = lineStates(newLines);
  const out: LineDirective[] = [];
  for (let k = 0; k < p.hunks.length; k++) {
    const h = p.hunks[k]!;
    const next = p.hunks[k + 1];
    // first unchanged line after the hunk, 0-based, in both files (jsdiff's starts are the 1-based first
    // line of the range, even for an empty range)
    let newIdx = h.newStart - 1 + h.newLines;
    let oldIdx = h.oldStart - 1 + h.oldLines;
    const limit = next ? next.newStart - 1 : newLines.length;
    while (newIdx < limit && !safeAfter(newLines, newIdx - 1, st)) {
      newIdx++;
      oldIdx++;
    }
    if (newIdx >= limit) continue; // no safe place before the next hunk: that hunk's directive restores it
    // the number the compiler would give line newIdx without a new directive
    const last = out.at(-1);
    const seen = last ? last.originalLine + (newIdx - last.beforeLine) : newIdx + 1;
    if (seen === oldIdx + 1) continue;
    out.push({ beforeLine: newIdx, originalLine: oldIdx + 1 });
  }
  return out;
}

/**
 * The patched text with a leading `#line 1 "file"` (so `__FILE__` and debug info name the kernel path,
 * not the overlay copy) and the directives of `lineDirectives` inserted.
 */
export function withLineDirectives(original: string, patched: string, file: string): string {
  const lines = patched.split('\n');
  const dirs = lineDirectives(original, patched);
  const quoted = JSON.stringify(file);
  const out: string[] = [`#line 1 ${quoted}`];
  let d = 0;
  for (let i = 0; i < lines.length; i++) {
    while (d < dirs.length && dirs[d]!.beforeLine === i) {
      out.push(`#line ${dirs[d]!.originalLine} ${quoted}`);
      d++;
    }
    out.push(lines[i]!);
  }
  return out.join('\n');
}

/**
 * The lines stage: every patched `.c`/`.h` copy gets its #line directives, and the patched text as the
 * diff made it is kept under `<workDir>/raw/` (compiler messages quote it with its own numbering).
 * Returns how many directives were added.
 */
export function writeLineDirectives(applied: readonly AppliedFile[], workDir: string): number {
  let n = 0;
  for (const f of applied) {
    if (!f.original || !f.patched || !/\.[ch]$/.test(f.path)) continue;
    const before = readFileSync(f.original, 'utf8');
    const after = readFileSync(f.patched, 'utf8');
    const text = withLineDirectives(before, after, f.path);
    const raw = join(workDir, 'raw', f.path);
    mkdirSync(dirname(raw), { recursive: true });
    writeFileSync(raw, after);
    n += text.split('\n').length - after.split('\n').length - 1;
    writeFileSync(f.patched, text);
  }
  return n;
}

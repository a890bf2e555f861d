/*
 * GNU patch, run on one file and read back: which hunk landed where, at which offset, with which fuzz.
 *
 * Suture applies diffs exactly as `patch` does (the kernel engineer's own tool, and the one every stable
 * backport is tested with), one file at a time onto a copy; this file only runs it and parses its
 * per-hunk report lines:
 *   Hunk #1 succeeded at 131 (offset 3 lines).
 *   Hunk #2 succeeded at 140 with fuzz 1 (offset -2 lines).
 *   Hunk #3 FAILED at 200.
 */
import { spawnSync } from 'node:child_process';
import { fail } from '../diagnostic.js';

export interface HunkReport {
  /** 1-based hunk number within the file */
  hunk: number;
  applied: boolean;
  /** the line patch names: where it landed, or where it looked for a failed hunk */
  line: number;
  offset: number;
  fuzz: number;
}

export interface PatchRun {
  ok: boolean;
  reports: HunkReport[];
  /** patch's own output, for error details */
  output: string;
}

const REPORT_RE =
  /^Hunk #(\d+) (succeeded|FAILED) at (\d+)(?: with fuzz (\d+))?(?: \(offset (-?\d+) lines?\))?\.?$/;

/** Parse patch's per-hunk report lines. */
export function parseReports(output: string): HunkReport[] {
  const out: HunkReport[] = [];
  for (const raw of output.split('\n')) {
    const m = REPORT_RE.exec(raw.trim());
    if (!m) continue;
    out.push({
      hunk: Number(m[1]),
      applied: m[2] === 'succeeded',
      line: Number(m[3]),
      fuzz: m[4] === undefined ? 0 : Number(m[4]),
      offset: m[5] === undefined ? 0 : Number(m[5]),
    });
  }
  return out;
}

/**
 * Apply `hunks` (a diff of one file, headers included) to `file` with at most `fuzz` context lines
 * ignored; `dryRun` only reports where the hunks would land.
 */
export function runPatch(file: string, hunks: string, fuzz: number, dryRun = false): PatchRun {
  const r = spawnSync(
    'patch',
    [
      '--batch',
      '--forward',
      `--fuzz=${fuzz}`,
      '--no-backup-if-mismatch',
      '--reject-file=-',
      '-p0',
      ...(dryRun ? ['--dry-run'] : []),
      '--',
      file,
    ],
    { input: hunks, encoding: 'utf8' },
  );
  if (r.error) {
    fail('DIFF-PATCH-MISSING', `cannot run GNU patch: ${r.error.message}`, {
      hint: 'install it: apt-get install patch',
    });
  }
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { ok: r.status === 0, reports: parseReports(output), output };
}

/*
 * What each stage of the build says when it ends: the one-line summaries `suture build` prints after
 * a stage's name (`kernel: 6.1.0-53-cloud-amd64 (Debian 6.1.187-1, build id 4409ab2b8a5a…)`).
 * Pure functions of the stage's result.
 */
import type { ElfObject } from '../elf/index.js';
import type { KernelTarget } from '../kernel/target.js';
import type { CompiledUnit } from '../source/compile-units.js';
import type { AppliedFile, SourceDiff } from '../source/diff.js';
import type { UnitPlan } from '../source/units.js';

/** `3 #line directives`, `1 function to carry`: a summary counting a list or a number. */
export const count =
  (what: string, tail = '') =>
  (n: number | unknown[]) => {
    const k = typeof n === 'number' ? n : n.length;
    return `${k} ${what}${k === 1 ? '' : 's'}${tail ? ` ${tail}` : ''}`;
  };

export const describeTarget = (t: KernelTarget) =>
  `${t.release} (Debian ${t.debianVersion}, build id ${t.buildId.slice(0, 12)}…)`;

export const describeApplied = (a: AppliedFile[], diff: SourceDiff) =>
  `${a.length} file${a.length === 1 ? '' : 's'}, ${diff.files.reduce((n, f) => n + f.hunks.length, 0)} hunks, -p${diff.strip}` +
  (a.some((f) => f.notes.length) ? ` (${a.flatMap((f) => f.notes).join('; ')})` : '');

export const describePlan = (p: UnitPlan) =>
  [
    p.units.map((u) => `${u.object} → ${u.target}`).join(', '),
    ...p.headers.map((h) => `${h.header} → ${h.candidates.join(', ') || 'no unit'}`),
    ...p.ignored.map((i) => `${i.path} ignored (${i.why})`),
  ].join('; ');

export const describeVerified = (m: ReadonlyMap<unknown, ElfObject>) =>
  `${m.size} object${m.size === 1 ? '' : 's'} match the shipped binary`;

export const describeCompiled = (r: readonly CompiledUnit[]) =>
  r
    .map(
      (u) =>
        `${u.unit.object} ${(u.original.ms / 1000).toFixed(1)} s + ${(u.patched.ms / 1000).toFixed(1)} s`,
    )
    .join(', ');

/*
 * The stages of a build, and the runner that times them: each stage is announced as it starts and ends
 * through `onProgress`, its time kept, and the build stops after the stage the caller asked for.
 */
import type { Diagnostic } from '../diagnostic.js';

export const STAGES = [
  'kernel',
  'diff',
  'lines',
  'units',
  'compile',
  'verify',
  'objdiff',
  'module',
  'manifest',
] as const;
export type Stage = (typeof STAGES)[number];

export type BuildProgress =
  | { kind: 'stage-start'; stage: Stage }
  | { kind: 'stage-done'; stage: Stage; ms: number; summary: string }
  | { kind: 'note'; stage: Stage; text: string }
  /** a check that does not stop the build (e.g. KLP-INLINE-SPREAD), as soon as it is known */
  | { kind: 'warning'; stage: Stage; diagnostic: Diagnostic };

/** Thrown by a stage the caller asked to stop after; never escapes buildLivepatch. */
export class StopAfter extends Error {}

export class StageRunner {
  readonly timings: { stage: Stage; ms: number }[] = [];
  constructor(
    readonly emit: (e: BuildProgress) => void,
    private readonly stopAfter: Stage | undefined,
  ) {}

  /**
   * Run one stage: `fn` does the work, `summarize` says what came of it in one line, `keep` records it in
   * the result before the build stops there if the caller asked to stop after this stage.
   */
  async run<T>(
    stage: Stage,
    fn: () => Promise<T> | T,
    summarize: (v: T) => string,
    keep?: (v: T) => void,
  ): Promise<T> {
    this.emit({ kind: 'stage-start', stage });
    const t0 = performance.now();
    const v = await fn();
    const ms = performance.now() - t0;
    this.timings.push({ stage, ms });
    this.emit({ kind: 'stage-done', stage, ms, summary: summarize(v) });
    keep?.(v);
    if (this.stopAfter === stage) throw new StopAfter();
    return v;
  }

  note(stage: Stage, text: string): void {
    this.emit({ kind: 'note', stage, text });
  }
}

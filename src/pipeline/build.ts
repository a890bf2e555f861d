/*
 * One build of a livepatch: what the caller asks for (`BuildOptions`), what it gets back
 * (`BuildResult`, a `UnitResult` per compiled unit), and what the stages share while it runs (`Build`:
 * the scratch directories, the stage runner, and what is known so far).
 */
import type { Diagnostic } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import type { Toolchain } from '../kernel/toolchain.js';
import type { Manifest } from '../manifest/manifest.js';
import type { ObjectDiff } from '../objdiff/objdiff.js';
import type { CompiledUnit } from '../source/compile-units.js';
import type { UnitPlan } from '../source/units.js';
import type { BuildProgress, Stage, StageRunner } from './stages.js';

export interface BuildOptions {
  diffPath: string;
  release: string;
  /** livepatch name (default: from the diff's file name) */
  name?: string;
  /** the manifest's version of this livepatch (default DEFAULT_PATCH_VERSION, `1`) */
  version?: string;
  replace?: boolean;
  /** where livepatch-NAME.ko and NAME.manifest.json go (default: cwd) */
  outDir?: string;
  /** keep the scratch directory (overlay, objects) for inspection */
  keepWork?: boolean;
  /** context lines a hunk may ignore when the diff is applied (`patch --fuzz`, 0 to 3; default 0) */
  fuzz?: number;
  /** stop after this stage (e.g. `objdiff` to classify without linking a module) */
  stopAfter?: Stage;
  /** `suture check`: every stage and rule up to the module's, which links nothing; stops after `module` */
  checkOnly?: boolean;
  /** `--strict`: warnings that carry a patch with a loss (KLP-MODULE-TRACEPOINT-INERT) refuse it instead */
  strict?: boolean;
  /** use this target instead of ensureKernel(release) */
  target?: KernelTarget;
  onProgress?: (e: BuildProgress) => void;
}

export interface UnitResult extends CompiledUnit {
  diff?: ObjectDiff;
  /** sympos of each local of the unit's file in the running kernel (0 = unique) */
  sympos: Map<string, number>;
}

export interface BuildResult {
  name: string;
  release: string;
  plan: UnitPlan;
  units: UnitResult[];
  timings: { stage: Stage; ms: number }[];
  /** lines like `meminfo.o: changed function: meminfo_proc_show` */
  summary: string[];
  /** every warning of the checks, all units (also emitted as `warning` progress events) */
  warnings: Diagnostic[];
  ko?: string;
  manifestPath?: string;
  manifest?: Manifest;
  workDir: string;
}

/** One build in progress: its options, scratch directories, stage runner and what is known so far. */
export interface Build {
  opts: BuildOptions;
  name: string;
  diffText: string;
  workDir: string;
  overlay: string;
  run: StageRunner;
  /** returned as is when the caller asked to stop after a stage */
  result: BuildResult;
  /** the kernel's own compiler (host or build root), known after the kernel stage */
  toolchain?: Toolchain;
}

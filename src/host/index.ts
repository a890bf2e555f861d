/*
 * host/: the kernel's livepatch interface on a live machine — the library behind `suture apply`,
 * `revert`, `list`, `status`, `host install-service`, and the agent's apply step.
 */
export { type ApplyOptions, type ApplyResult, applyLivepatch } from './apply.js';
export { type BootOutcome, bootApply } from './boot.js';
export { type EventSink, FORCE_RISK, type SignalRound, type TransitionEvent } from './events.js';
export { STATUS_EXIT, type StatusVerdict, statusExitCode, statusVerdict } from './exit-code.js';
export {
  type BadMark,
  type BadReason,
  badMarkOf,
  badPatches,
  bootId,
  clearBad,
  DEFAULT_SETTLE_MS,
  findTrouble,
  guardDir,
} from './guard.js';
export { encodeBuildIdNote, parseBuildIdNote, type RunningKernel, runningKernel } from './identity.js';
export type { KlpFunc, KlpObject, Livepatch, PatchState } from './livepatch.js';
export { readManifest } from './manifest-read.js';
export {
  MODES,
  type ModeSetting,
  modeAllowsApply,
  modeAllowsCheckin,
  modeFile,
  readMode,
  type SutureMode,
} from './mode.js';
export { type ModuleInfo, parseModinfo, readModinfo } from './modinfo.js';
export { describeRound, eventLines, statusText } from './report.js';
export { patchName, type RevertOptions, type RevertResult, revertLivepatch } from './revert.js';
export { type HostRoots, type LoaderOutcome, liveRoots, type ModuleLoader, resolveRoots } from './roots.js';
export { installUnit, renderUnit, UNIT_NAME, type UnitOptions } from './service.js';
export {
  type HostStatus,
  hostStatus,
  type LivepatchStatus,
  listLivepatches,
  type StoredSummary,
} from './status.js';
export { removeStored, type StoredPatch, storeDir, storedPatches, storePatch } from './store.js';
export { decodeTaint, type Taint } from './taint.js';
export { formatStalledTask, type StackFrame, type StalledTask } from './tasks.js';
export { KERNEL_SIGNAL_PERIOD_MS } from './transition.js';
export { verifyModule } from './verify.js';

/*
 * The QEMU harness (see README.md): boot the exact target kernel, run scripts, report what happened.
 */
export { CpioArchive, type CpioEntry } from './cpio.js';
export { VmBootError, type VmEnd } from './end.js';
export {
  assembleInitramfs,
  type FileSpec,
  type Initramfs,
  type InitramfsSpec,
  VM_NODE_FLAGS,
} from './initramfs.js';
export type { Layer } from './layer-cache.js';
export { type ModuleDeps, moduleName, parseModulesDep, resolveModules, targetModuleDeps } from './modules.js';
export type { ExecOptions, ExecResult, VmOptions, VmOutcome, VmResult } from './options.js';
export {
  findModuleRefusals,
  findProblems,
  type KernelProblem,
  type ModuleRefusal,
  type ProblemKind,
  worstProblem,
} from './problems.js';
export { runInVm } from './run.js';
export { bootVm, kernelLines, VmSession } from './session.js';
export { shellVm } from './shell.js';
export { productionPackages, VM_SUTURE_DIR } from './suture-files.js';

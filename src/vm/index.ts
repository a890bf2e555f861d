/*
 * The QEMU harness (see README.md): boot the exact target kernel, run scripts, report what happened.
 */
export { CpioArchive, type CpioEntry } from './cpio.js';
export {
  assembleInitramfs,
  type FileSpec,
  type Initramfs,
  type InitramfsSpec,
  type Layer,
  productionPackages,
  VM_NODE_FLAGS,
  VM_SUTURE_DIR,
} from './initramfs.js';
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
export { bootVm, kernelLines, VmBootError, type VmEnd, VmSession } from './session.js';
export { shellVm } from './shell.js';

/*
 * What a target kernel requires of carried code, from its config: IBT (`endbr64` at every function entry)
 * and return thunks. The object rules KLP-IBT-ENDBR and KLP-RETURN-THUNK check the diff against it.
 */
import { readFileSync } from 'node:fs';
import type { TargetCode } from '../check/facts.js';

/** The code requirements of a kernel config (the text of `/boot/config-R`). */
export function targetCodeOf(config: string): TargetCode {
  const on = (option: string) => new RegExp(`^CONFIG_${option}=y$`, 'm').test(config);
  return {
    ibt: on('X86_KERNEL_IBT'),
    rethunk: on('MITIGATION_RETHUNK') || on('RETHUNK'),
    returnThunk: '__x86_return_thunk',
  };
}

/** The code requirements of the kernel whose config file is `path`. */
export function targetCode(path: string): TargetCode {
  return targetCodeOf(readFileSync(path, 'utf8'));
}

/*
 * kernelToolchain(release): the toolchain of a cached kernel, for the build stages (see toolchain.ts).
 */
import { readFileSync } from 'node:fs';
import { parseKernelConfig } from './config.js';
import { openCachedKernel } from './fetch.js';
import { parseRelease } from './release-name.js';
import { type Toolchain, type ToolchainOptions, toolchainForConfig } from './toolchain.js';

/** How to run compile and kbuild steps for `release` (must be fetched). Throws KERNEL-COMPILER-MISMATCH. */
export function kernelToolchain(release: string, opts: ToolchainOptions = {}): Promise<Toolchain> {
  const t = openCachedKernel(release);
  return toolchainForConfig(
    parseKernelConfig(readFileSync(t.config, 'utf8')),
    parseRelease(release).suite,
    opts,
  );
}

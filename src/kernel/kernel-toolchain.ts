/*
 * kernelToolchain(release): the toolchain of a cached kernel, for the build stages (see toolchain.ts).
 */
import { readFileSync } from 'node:fs';
import { parseKernelConfig } from './config.js';
import { cachedDetails, openCachedKernel } from './fetch.js';
import { parseRelease } from './release-name.js';
import { type Toolchain, type ToolchainOptions, toolchainForConfig } from './toolchain.js';

/** How to run compile and kbuild steps for `release` (must be fetched). Throws KERNEL-COMPILER-MISMATCH. */
export function kernelToolchain(release: string, opts: ToolchainOptions = {}): Promise<Toolchain> {
  const t = openCachedKernel(release);
  // the root its tree was prepared in, while it is still in the cache (its gcc is checked again)
  const knownRoot = cachedDetails(release)?.toolchain?.root;
  return toolchainForConfig(parseKernelConfig(readFileSync(t.config, 'utf8')), parseRelease(release).suite, {
    ...(knownRoot ? { knownRoot } : {}),
    ...opts,
  });
}

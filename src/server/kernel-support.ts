/*
 * What the server knows of a machine's booted kernel, for the signed `kernelSupport` of a check-in
 * answer (manifest/protocol.ts): `patched` when some non-revoked patch exists for that exact release
 * and build id (in any tier, whatever its waves or halts), else `upgrade-required` when patches exist
 * for another kernel of the same flavour — the release's suffix after its version, `cloud-amd64` in
 * `6.1.0-53-cloud-amd64` or `6.12.38+deb13-cloud-amd64` — naming the newest few of them, else
 * `unsupported`. A pure function of the store's list of patched kernels (store/patches.ts
 * `patchedKernels`), which the offer cache reads once per expiry, not at every check-in.
 */
import { type KernelIdentity, type KernelSupport, MAX_PATCHED_KERNELS } from '../manifest/protocol.js';

/** A kernel the server holds at least one non-revoked patch for, with its newest publish time. */
export interface PatchedKernel {
  release: string;
  buildId: string;
  newest: string;
}

/** The same list from patch records already at hand (the dashboard's), without a query. */
export function patchedKernelsOf(
  patches: readonly { kernelRelease: string; buildId: string; publishedAt: string; revokedAt?: string }[],
): PatchedKernel[] {
  const by = new Map<string, PatchedKernel>();
  for (const p of patches) {
    if (p.revokedAt) continue;
    const key = `${p.kernelRelease}\0${p.buildId}`;
    const k = by.get(key);
    if (!k || k.newest < p.publishedAt)
      by.set(key, { release: p.kernelRelease, buildId: p.buildId, newest: p.publishedAt });
  }
  return [...by.values()];
}

export interface KernelSupportAnswer {
  kernelSupport: KernelSupport;
  /** with `upgrade-required`: same-flavour kernels with patches, newest first */
  patchedKernels?: KernelIdentity[];
}

/**
 * The flavour of a kernel release: the `-`-separated words from the first one (after the version)
 * that starts with a letter; `''` for a release without one (`6.1.0`, `6.1.0-53`).
 */
export function kernelFlavour(release: string): string {
  const words = release.split('-');
  const i = words.findIndex((w, k) => k > 0 && /^[A-Za-z]/.test(w));
  return i < 0 ? '' : words.slice(i).join('-');
}

/** Newest publish first; ties by release, then build id, descending (the store's order). */
function newestFirst(a: PatchedKernel, b: PatchedKernel): number {
  const key = (k: PatchedKernel) => [k.newest, k.release, k.buildId];
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < x.length; i++) {
    const [p = '', q = ''] = [x[i], y[i]];
    if (p !== q) return p > q ? -1 : 1;
  }
  return 0;
}

export function kernelSupportOf(
  kernel: KernelIdentity,
  patched: readonly PatchedKernel[],
): KernelSupportAnswer {
  if (patched.some((k) => k.release === kernel.release && k.buildId === kernel.buildId))
    return { kernelSupport: 'patched' };
  const flavour = kernelFlavour(kernel.release);
  const same = patched
    .filter((k) => kernelFlavour(k.release) === flavour)
    .sort(newestFirst)
    .slice(0, MAX_PATCHED_KERNELS)
    .map((k) => ({ release: k.release, buildId: k.buildId }));
  return same.length
    ? { kernelSupport: 'upgrade-required', patchedKernels: same }
    : { kernelSupport: 'unsupported' };
}

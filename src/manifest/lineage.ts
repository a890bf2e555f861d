/*
 * Patch lineages and their versions: which of two manifests of one livepatch is the newer.
 *
 * A lineage is one livepatch (the manifest's `name`) for one exact kernel (release + build id): v1, v2,
 * v3 … of the same fix. The caller of `suture build` sets the version (free-form text such as `2` or
 * `2026.11.24-1`); this file defines how two versions compare, the same way on every machine:
 *
 *   - a version is cut into runs of digits and runs of other characters: `2026.11.24-1` is
 *     2026 · "." · 11 · "." · 24 · "-" · 1;
 *   - runs are compared left to right: digit runs as numbers (`10` > `9`, `007` = `7`), other runs by
 *     their characters (code points), and a digit run is newer than a non-digit run;
 *   - when every run is equal, the version with more runs is the newer (`1.1` > `1`).
 *
 * The agent never installs a version lower than one it has applied in the same lineage (a downgrade to
 * a revoked v1 by relabelling the answer, or a server that offers it again): publish the old fix again
 * under a higher version instead. Leaf file.
 */
import type { Manifest } from './manifest.js';

type Run = number | string;

function runs(version: string): Run[] {
  return (version.match(/\d+|\D+/g) ?? []).map((r) => (/^\d/.test(r) ? Number(r) : r));
}

/** -1 when `a` is older than `b`, 0 when they are the same version, 1 when `a` is newer. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const x = runs(a);
  const y = runs(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i] as Run;
    const q = y[i] as Run;
    if (p === q) continue;
    if (typeof p === 'number' && typeof q === 'number') return p < q ? -1 : 1;
    if (typeof p === 'number') return 1;
    if (typeof q === 'number') return -1;
    return p < q ? -1 : 1;
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** The lineage a manifest belongs to: its name on its exact kernel. */
export function lineageKey(m: Pick<Manifest, 'name' | 'kernel'>): string {
  return `${m.kernel.release}/${m.kernel.buildId}/${m.name}`;
}

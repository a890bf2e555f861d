/*
 * The table of patches the operator reads after `suture publish` and in `suture kernels --patches`:
 * one row a patch with its id, name, version, exact kernel (release and the build id's first 12 hex
 * digits), tiers and CVEs; with `state`, whether it is active or revoked. It lives beside main.ts,
 * not in commands/, where every file is a sub-command that main.ts loads.
 */
import { renderTable } from '../server/admin-client.js';
import type { PatchRecord } from '../server/store.js';

/** The patches as a plain text table; `state` adds the active/revoked column before the CVEs. */
export function renderPatchTable(patches: PatchRecord[], opts: { state?: boolean } = {}): string {
  const state = opts.state === true;
  return renderTable(
    ['patch', 'name', 'version', 'kernel', 'build id', 'tiers', ...(state ? ['state'] : []), 'CVEs'],
    patches.map((p) => [
      p.id,
      p.name,
      p.version,
      p.kernelRelease,
      p.buildId.slice(0, 12),
      p.tiers.join(','),
      ...(state ? [p.revokedAt ? 'revoked' : 'active'] : []),
      p.cves.join(',') || '-',
    ]),
  );
}

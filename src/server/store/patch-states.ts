/*
 * A machine's recorded patch states, brought in line with what its agent says (writing only what
 * changed), and the rule of which patches a machine may speak for at all (`MAY_REPORT`). Shared by
 * the check-in paths of both engines and the report.
 */
import type { CheckinRequest } from '../../manifest/protocol.js';
import type { Sql } from '../db.js';

/**
 * A patch a machine may report on: one offered to it (its exact kernel, a tier the machine is in,
 * revoked or not, since reverting a revoked patch is reported too) or one it already has a state for.
 * Parameters, in order: the kernel release and build id the machine runs, its tier, its id.
 */
export const MAY_REPORT = `((p.kernel_release = ? AND p.build_id = ?
    AND EXISTS (SELECT 1 FROM patch_tiers pt WHERE pt.patch_id = p.id AND pt.tier = ?))
  OR EXISTS (SELECT 1 FROM machine_patches r WHERE r.machine_id = ? AND r.patch_id = p.id))`;

export interface RecordedState {
  patch_id: string;
  state: string;
  reason: string | null;
  transition: string | null;
}

/** `recorded`: the machine's patch states when the caller already read them (PostgreSQL's check-in) */
export async function syncPatchStates(
  t: Sql,
  m: { id: string; tier: string },
  req: CheckinRequest,
  now: string,
  recorded?: RecordedState[],
): Promise<void> {
  const machineId = m.id;
  const existing =
    recorded ??
    (await t.all<RecordedState>(
      'SELECT patch_id, state, reason, transition FROM machine_patches WHERE machine_id = ?',
      [machineId],
    ));
  const known = new Map(existing.map((e) => [e.patch_id, e]));
  const reported = new Set(req.patches.map((p) => p.patchId));
  for (const e of existing) {
    if (!reported.has(e.patch_id)) {
      await t.run('DELETE FROM machine_patches WHERE machine_id = ? AND patch_id = ?', [
        machineId,
        e.patch_id,
      ]);
    }
  }
  for (const s of req.patches) {
    const reason = s.reason ?? null;
    const transition = s.transition ? JSON.stringify(s.transition) : null;
    const k = known.get(s.patchId);
    if (k && k.state === s.state && k.reason === reason && k.transition === transition) continue;
    // patches this server does not know (another server's, or forged ids), or never offered to this
    // machine, are ignored: a machine speaks only for what it was given
    await t.run(
      `INSERT INTO machine_patches (machine_id, patch_id, state, reason, transition, updated_at)
       SELECT ?, p.id, ?, ?, ?, ? FROM patches p WHERE p.id = ? AND ${MAY_REPORT}
       ON CONFLICT (machine_id, patch_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
         transition = excluded.transition, updated_at = excluded.updated_at`,
      [
        machineId,
        s.state,
        reason,
        transition,
        now,
        s.patchId,
        req.kernel.release,
        req.kernel.buildId,
        m.tier,
        machineId,
      ],
    );
  }
}

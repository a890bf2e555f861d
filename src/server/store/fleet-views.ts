/*
 * Fleet views for the dashboard and /metrics: machines by kernel, tier and state; each patch's rollout
 * per tier; failed and stalled patches; the machines that reported on one patch; counters.
 */
import type { PatchState, Transition } from '../../manifest/protocol.js';
import type { Db } from '../db.js';
import { MACHINE_STATE, type MachineState } from './machines.js';

export interface RolloutRow {
  patchId: string;
  tier: string;
  /** machines of this tier running the patch's exact kernel */
  eligible: number;
  applied: number;
  transition: number;
  failed: number;
  reverted: number;
}

export interface FailureRow {
  machineId: string;
  hostname: string;
  tier: string;
  patchId: string;
  patchName: string;
  reason: string;
  transition?: Transition;
  updatedAt: string;
}

export interface PatchMachineRow {
  machineId: string;
  hostname: string;
  tier: string;
  state: PatchState;
  reason?: string;
  updatedAt: string;
}

export interface FleetRow {
  release: string;
  buildId: string;
  tier: string;
  state: MachineState;
  machines: number;
}

export interface FleetViewStore {
  /** machines grouped by exact kernel, tier and summary state */
  fleet(): Promise<FleetRow[]>;
  rollout(): Promise<RolloutRow[]>;
  failures(limit?: number): Promise<FailureRow[]>;
  /** the machines that reported a state for this patch */
  patchMachines(patchId: string, limit?: number): Promise<PatchMachineRow[]>;
  /** counters for /metrics */
  counters(): Promise<{
    checkins: number;
    machines: number;
    applyFailures: Array<{ patchId: string; n: number }>;
  }>;
}

export function sqlFleetViews(db: Db): FleetViewStore {
  return {
    async fleet(): Promise<
      Array<{ release: string; buildId: string; tier: string; state: MachineState; machines: number }>
    > {
      const rows = await db.all<{
        release: string;
        build_id: string;
        tier: string;
        state: MachineState;
        n: number | string;
      }>(
        `SELECT release, build_id, tier, state, COUNT(*) AS n FROM (
           SELECT m.kernel_release AS release, m.build_id, m.tier, ${MACHINE_STATE} AS state FROM machines m) s
         GROUP BY release, build_id, tier, state ORDER BY release, build_id, tier, state`,
      );
      return rows.map((r) => ({
        release: r.release,
        buildId: r.build_id,
        tier: r.tier,
        state: r.state,
        machines: Number(r.n),
      }));
    },

    async rollout(): Promise<RolloutRow[]> {
      const count = (state: string) =>
        `(SELECT COUNT(*) FROM machine_patches mp JOIN machines m ON m.id = mp.machine_id
          WHERE mp.patch_id = p.id AND m.tier = pt.tier AND mp.state ${state === 'failed' ? "IN ('failed', 'bad')" : `= '${state}'`})`;
      const rows = await db.all<Record<string, string | number>>(
        `SELECT pt.patch_id, pt.tier,
           (SELECT COUNT(*) FROM machines m WHERE m.kernel_release = p.kernel_release AND m.build_id = p.build_id
              AND m.tier = pt.tier) AS eligible,
           ${count('applied')} AS applied, ${count('transition')} AS transition, ${count('failed')} AS failed,
           ${count('reverted')} AS reverted
         FROM patch_tiers pt JOIN patches p ON p.id = pt.patch_id ORDER BY p.published_at DESC, pt.added_at`,
      );
      return rows.map((r) => ({
        patchId: String(r.patch_id),
        tier: String(r.tier),
        eligible: Number(r.eligible),
        applied: Number(r.applied),
        transition: Number(r.transition),
        failed: Number(r.failed),
        reverted: Number(r.reverted),
      }));
    },

    async failures(limit = 100): Promise<FailureRow[]> {
      const rows = await db.all<{
        machine_id: string;
        hostname: string;
        tier: string;
        patch_id: string;
        name: string;
        state: string;
        reason: string | null;
        transition: string | null;
        updated_at: string;
      }>(
        `SELECT mp.machine_id, m.hostname, m.tier, mp.patch_id, p.name, mp.state, mp.reason, mp.transition, mp.updated_at
         FROM machine_patches mp JOIN machines m ON m.id = mp.machine_id JOIN patches p ON p.id = mp.patch_id
         WHERE mp.state IN ('failed', 'bad') OR (mp.state = 'transition' AND mp.transition IS NOT NULL)
         ORDER BY mp.updated_at DESC LIMIT ?`,
        [limit],
      );
      const out: FailureRow[] = [];
      for (const r of rows) {
        const transition = r.transition ? (JSON.parse(r.transition) as Transition) : undefined;
        if (r.state === 'transition' && !transition?.stalled) continue;
        const f: FailureRow = {
          machineId: r.machine_id,
          hostname: r.hostname,
          tier: r.tier,
          patchId: r.patch_id,
          patchName: r.name,
          reason: r.reason ?? (transition ? `transition stalled for ${transition.seconds} s` : ''),
          updatedAt: r.updated_at,
        };
        if (transition) f.transition = transition;
        out.push(f);
      }
      return out;
    },

    async patchMachines(patchId: string, limit = 500): Promise<PatchMachineRow[]> {
      const rows = await db.all<{
        machine_id: string;
        hostname: string;
        tier: string;
        state: PatchState;
        reason: string | null;
        updated_at: string;
      }>(
        `SELECT mp.machine_id, m.hostname, m.tier, mp.state, mp.reason, mp.updated_at
         FROM machine_patches mp JOIN machines m ON m.id = mp.machine_id WHERE mp.patch_id = ?
         ORDER BY m.tier, m.hostname LIMIT ?`,
        [patchId, limit],
      );
      return rows.map((r) => {
        const x: PatchMachineRow = {
          machineId: r.machine_id,
          hostname: r.hostname,
          tier: r.tier,
          state: r.state,
          updatedAt: r.updated_at,
        };
        if (r.reason) x.reason = r.reason;
        return x;
      });
    },

    async counters(): Promise<{
      checkins: number;
      machines: number;
      applyFailures: Array<{ patchId: string; n: number }>;
    }> {
      const c = await db.get<{ checkins: number | string | null; machines: number | string }>(
        'SELECT SUM(checkins) AS checkins, COUNT(*) AS machines FROM machines',
      );
      const f = await db.all<{ patch_id: string; n: number | string }>(
        `SELECT patch_id, COUNT(*) AS n FROM reports WHERE state IN ('failed', 'bad') GROUP BY patch_id ORDER BY patch_id`,
      );
      return {
        checkins: Number(c?.checkins ?? 0),
        machines: Number(c?.machines ?? 0),
        applyFailures: f.map((r) => ({ patchId: r.patch_id, n: Number(r.n) })),
      };
    },
  };
}

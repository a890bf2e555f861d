/*
 * Machines as operators see them: the list, one machine with its patch states, the kernels in the
 * fleet, moving a machine to another tier (audited), and bulk insertion of enrolled machines (benchmark
 * and import). A machine's summary state is its worst patch state (`MACHINE_STATE`).
 */
import type { PatchState, Transition } from '../../manifest/protocol.js';
import type { Db } from '../db.js';
import { type AuditEntry, insertAudit } from './audit.js';
import type { EnrollInput } from './enrollment.js';

export interface MachinePatch {
  patchId: string;
  name: string;
  version: string;
  cves: string[];
  state: PatchState;
  reason?: string;
  transition?: Transition;
  updatedAt: string;
  revoked: boolean;
}

/** A machine's summary state: its worst patch state (failed > transition > applied > none). */
export type MachineState = 'failed' | 'transition' | 'applied' | 'none';

export interface MachineRecord {
  id: string;
  tier: string;
  hostname: string;
  kernelRelease: string;
  buildId: string;
  agentVersion: string;
  enrolledAt: string;
  lastCheckinAt?: string;
  checkins: number;
  state: MachineState;
  /** set while the machine's credential is disabled (`suture machines ID --disable`) */
  disabledAt?: string;
}

export interface MachineDetail extends MachineRecord {
  patches: MachinePatch[];
}

export interface KernelSummary {
  release: string;
  buildId: string;
  patches: number;
  activePatches: number;
  machines: number;
}

export interface MachineStore {
  /** Move a machine to another tier: from its next check-in it is offered that tier's patches. */
  setMachineTier(machineId: string, tier: string, audit: AuditEntry): Promise<'ok' | 'unknown' | 'unchanged'>;
  /** Refuse (or accept again) the machine's credential: a disabled machine cannot check in, report or download. */
  setMachineDisabled(
    machineId: string,
    disabled: boolean,
    audit: AuditEntry,
    now: string,
  ): Promise<'ok' | 'unknown' | 'unchanged'>;
  listMachines(limit?: number): Promise<MachineRecord[]>;
  getMachine(id: string): Promise<MachineDetail | undefined>;
  listKernels(): Promise<KernelSummary[]>;
  /** Insert many already-enrolled machines at once (benchmark and import). */
  bulkInsertMachines(
    tokenId: string,
    rows: Array<Omit<EnrollInput, 'tokenHash' | 'now'> & { tier: string }>,
    now: string,
  ): Promise<void>;
}

interface MachineRow {
  id: string;
  tier: string;
  hostname: string;
  kernel_release: string;
  build_id: string;
  agent_version: string;
  enrolled_at: string;
  last_checkin_at: string | null;
  checkins: number | string;
  state: MachineState;
  disabled_at: string | null;
}

function toMachine(r: MachineRow): MachineRecord {
  const m: MachineRecord = {
    id: r.id,
    tier: r.tier,
    hostname: r.hostname,
    kernelRelease: r.kernel_release,
    buildId: r.build_id,
    agentVersion: r.agent_version,
    enrolledAt: r.enrolled_at,
    checkins: Number(r.checkins),
    state: r.state,
  };
  if (r.last_checkin_at) m.lastCheckinAt = r.last_checkin_at;
  if (r.disabled_at) m.disabledAt = r.disabled_at;
  return m;
}

export const MACHINE_STATE = `CASE
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state IN ('failed', 'bad')) THEN 'failed'
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state = 'transition') THEN 'transition'
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state = 'applied') THEN 'applied'
  ELSE 'none' END`;

const MACHINE_COLUMNS = `m.id, m.tier, m.hostname, m.kernel_release, m.build_id, m.agent_version, m.enrolled_at,
  m.last_checkin_at, m.checkins, ${MACHINE_STATE} AS state, m.disabled_at`;

export function sqlMachines(db: Db): MachineStore {
  return {
    setMachineDisabled(machineId, disabled, audit, now) {
      return db.tx(async (x) => {
        const m = await x.get<{ disabled_at: string | null }>(
          'SELECT disabled_at FROM machines WHERE id = ?',
          [machineId],
        );
        if (!m) return 'unknown' as const;
        if ((m.disabled_at !== null) === disabled) return 'unchanged' as const;
        await x.run('UPDATE machines SET disabled_at = ? WHERE id = ?', [disabled ? now : null, machineId]);
        await insertAudit(x, audit);
        return 'ok' as const;
      });
    },

    setMachineTier(
      machineId: string,
      tier: string,
      audit: AuditEntry,
    ): Promise<'ok' | 'unknown' | 'unchanged'> {
      return db.tx(async (x) => {
        const m = await x.get<{ tier: string }>('SELECT tier FROM machines WHERE id = ?', [machineId]);
        if (!m) return 'unknown' as const;
        if (m.tier === tier) return 'unchanged' as const;
        await x.run('UPDATE machines SET tier = ? WHERE id = ?', [tier, machineId]);
        await insertAudit(x, { ...audit, detail: { ...audit.detail, from: m.tier } });
        return 'ok' as const;
      });
    },

    async listMachines(limit = 1000): Promise<MachineRecord[]> {
      const rows = await db.all<MachineRow>(
        `SELECT ${MACHINE_COLUMNS} FROM machines m ORDER BY m.hostname, m.id LIMIT ?`,
        [limit],
      );
      return rows.map(toMachine);
    },

    async getMachine(id: string): Promise<MachineDetail | undefined> {
      const r = await db.get<MachineRow>(`SELECT ${MACHINE_COLUMNS} FROM machines m WHERE m.id = ?`, [id]);
      if (!r) return undefined;
      const ps = await db.all<{
        patch_id: string;
        name: string;
        version: string;
        cves: string;
        state: PatchState;
        reason: string | null;
        transition: string | null;
        updated_at: string;
        revoked_at: string | null;
      }>(
        `SELECT mp.patch_id, p.name, p.version, p.cves, mp.state, mp.reason, mp.transition, mp.updated_at, p.revoked_at
         FROM machine_patches mp JOIN patches p ON p.id = mp.patch_id WHERE mp.machine_id = ?
         ORDER BY p.published_at DESC`,
        [id],
      );
      return {
        ...toMachine(r),
        patches: ps.map((p) => {
          const mp: MachinePatch = {
            patchId: p.patch_id,
            name: p.name,
            version: p.version,
            cves: JSON.parse(p.cves) as string[],
            state: p.state,
            updatedAt: p.updated_at,
            revoked: p.revoked_at !== null,
          };
          if (p.reason) mp.reason = p.reason;
          if (p.transition) mp.transition = JSON.parse(p.transition) as Transition;
          return mp;
        }),
      };
    },

    async listKernels(): Promise<KernelSummary[]> {
      const rows = await db.all<{
        release: string;
        build_id: string;
        patches: number | string;
        active: number | string;
        machines: number | string;
      }>(
        `SELECT k.release, k.build_id,
           (SELECT COUNT(*) FROM patches p WHERE p.kernel_release = k.release AND p.build_id = k.build_id) AS patches,
           (SELECT COUNT(*) FROM patches p WHERE p.kernel_release = k.release AND p.build_id = k.build_id
              AND p.revoked_at IS NULL) AS active,
           (SELECT COUNT(*) FROM machines m WHERE m.kernel_release = k.release AND m.build_id = k.build_id) AS machines
         FROM (SELECT kernel_release AS release, build_id FROM patches
               UNION SELECT kernel_release AS release, build_id FROM machines) k
         ORDER BY k.release, k.build_id`,
      );
      return rows.map((r) => ({
        release: r.release,
        buildId: r.build_id,
        patches: Number(r.patches),
        activePatches: Number(r.active),
        machines: Number(r.machines),
      }));
    },

    async bulkInsertMachines(
      tokenId: string,
      rows: Array<Omit<EnrollInput, 'tokenHash' | 'now'> & { tier: string }>,
      now: string,
    ): Promise<void> {
      const BATCH = 500;
      await db.tx(async (x) => {
        for (let i = 0; i < rows.length; i += BATCH) {
          const batch = rows.slice(i, i + BATCH);
          await x.run(
            `INSERT INTO machines (id, credential_hash, tier, hostname, kernel_release, build_id, agent_version, token_id,
               enrolled_at, checkins) VALUES ${batch.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, 0)').join(', ')}`,
            batch.flatMap((e) => [
              e.machineId,
              e.credentialHash,
              e.tier,
              e.hostname,
              e.kernelRelease,
              e.buildId,
              e.agentVersion,
              tokenId,
              now,
            ]),
          );
        }
      });
    },
  };
}

/*
 * Phased rollouts and halts, per patch and tier (columns of `patch_tiers`).
 *
 * A tier's rollout may come in waves — cumulative percentages of the tier's machines, e.g. 10,50,100.
 * Each machine has a stable bucket 0..99 (sha256 of its id), so it stays in its wave: wave i holds the
 * buckets from the previous wave's percentage up to its own. A wave opens (`advanceRollouts`) when the
 * one before has `gate_checkins` healthy machines (the patch applied, and a check-in since) and has been
 * open `soak_seconds`. A halt (a `bad` report, or a failure report in a waved tier) stops the patch for
 * that tier: no further machine is offered it; those that run it keep it until it is revoked; an admin
 * resumes it. Every change writes an audit entry in its transaction.
 */
import { createHash } from 'node:crypto';
import type { Db, Sql } from '../db.js';
import { type AuditEntry, insertAudit } from './audit.js';

export interface WavePlan {
  /** cumulative percentages, strictly increasing, the last one 100 */
  waves: number[];
  /** healthy machines the open wave needs before the next one opens */
  gateCheckins: number;
  /** seconds a wave stays open at least before the next one opens */
  soakSeconds: number;
}

export interface WaveStatus {
  wave: number;
  percent: number;
  /** machines of the tier (the patch's exact kernel) in this wave */
  size: number;
  applied: number;
  /** applied and checked in since applying */
  healthy: number;
  /** failed or bad */
  failed: number;
  openedAt?: string;
}

export interface TierRollout {
  patchId: string;
  tier: string;
  plan?: WavePlan;
  /** waves open so far (1.. plan.waves.length) */
  wavesOpen: number;
  haltedAt?: string;
  haltReason?: string;
  haltExcerpt?: string;
  waves: WaveStatus[];
}

export type HaltOutcome = 'ok' | 'unknown' | 'unchanged';

export interface RolloutStore {
  /** every tier of the patch with its waves (size, applied, healthy, failed, opened at) and halt */
  rolloutStatus(patchId: string): Promise<TierRollout[]>;
  /** the halted (patch, tier) pairs, for the dashboard and /metrics */
  listHalts(): Promise<Array<{ patchId: string; tier: string; haltedAt: string; reason: string }>>;
  /** open every wave whose gate passed at `now`; returns what opened */
  advanceRollouts(now: string): Promise<Array<{ patchId: string; tier: string; wave: number }>>;
  haltPatch(patchId: string, tier: string, reason: string, audit: AuditEntry): Promise<HaltOutcome>;
  resumePatch(patchId: string, tier: string, audit: AuditEntry): Promise<HaltOutcome>;
}

/** The machine's stable bucket 0..99: the same id is always in the same wave. */
export function rolloutBucket(machineId: string): number {
  return createHash('sha256').update(machineId).digest().readUInt32BE(0) % 100;
}

/** Percentage of the tier's buckets a new machine may be offered the patch in (0 when halted). */
export function reachOf(r: {
  waves: string | null;
  waves_open: number | string | null;
  halted_at: string | null;
}): number {
  if (r.halted_at) return 0;
  if (!r.waves) return 100;
  const waves = r.waves.split(',').map(Number);
  return waves[Math.max(0, Number(r.waves_open ?? 1) - 1)] ?? 100;
}

/** The columns `patch_tiers` gets for waves and halts (schema.ts addedColumns). */
export const ROLLOUT_COLUMNS = [
  'waves TEXT',
  'gate_checkins INTEGER',
  'soak_seconds INTEGER',
  'waves_open INTEGER',
  'wave_opened_at TEXT',
  'halted_at TEXT',
  'halt_reason TEXT',
  'halt_excerpt TEXT',
];

/** What one waved tier row holds */
interface TierRow {
  patch_id: string;
  tier: string;
  added_at: string;
  waves: string | null;
  gate_checkins: number | string | null;
  soak_seconds: number | string | null;
  waves_open: number | string | null;
  wave_opened_at: string | null;
  halted_at: string | null;
  halt_reason: string | null;
  halt_excerpt: string | null;
  kernel_release: string;
  build_id: string;
}

const TIER_COLUMNS = `pt.patch_id, pt.tier, pt.added_at, pt.waves, pt.gate_checkins, pt.soak_seconds, pt.waves_open,
  pt.wave_opened_at, pt.halted_at, pt.halt_reason, pt.halt_excerpt, p.kernel_release, p.build_id`;

function planOf(r: TierRow): WavePlan | undefined {
  if (!r.waves) return undefined;
  return {
    waves: r.waves.split(',').map(Number),
    gateCheckins: Number(r.gate_checkins ?? 1),
    soakSeconds: Number(r.soak_seconds ?? 0),
  };
}

/** Count the tier's machines per wave: size, applied, healthy, failed. */
async function countWaves(t: Sql, r: TierRow, percents: number[]): Promise<WaveStatus[]> {
  const rows = await t.all<{ id: string; state: string | null; healthy: number | string }>(
    `SELECT m.id, mp.state,
       CASE WHEN mp.state = 'applied' AND m.last_checkin_at > mp.updated_at THEN 1 ELSE 0 END AS healthy
     FROM machines m LEFT JOIN machine_patches mp ON mp.machine_id = m.id AND mp.patch_id = ?
     WHERE m.tier = ? AND m.kernel_release = ? AND m.build_id = ? AND m.disabled_at IS NULL`,
    [r.patch_id, r.tier, r.kernel_release, r.build_id],
  );
  const opened = r.wave_opened_at ? r.wave_opened_at.split(',') : [];
  const out: WaveStatus[] = percents.map((percent, i) => {
    const w: WaveStatus = { wave: i + 1, percent, size: 0, applied: 0, healthy: 0, failed: 0 };
    const at = opened[i];
    if (at) w.openedAt = at;
    return w;
  });
  for (const m of rows) {
    const b = rolloutBucket(m.id);
    const w = out[percents.findIndex((p) => b < p)];
    if (!w) continue;
    w.size++;
    if (m.state === 'applied') w.applied++;
    if (Number(m.healthy) === 1) w.healthy++;
    if (m.state === 'failed' || m.state === 'bad') w.failed++;
  }
  return out;
}

export function sqlRollouts(db: Db): RolloutStore {
  const tierRows = (where: string, params: string[]) =>
    db.all<TierRow>(
      `SELECT ${TIER_COLUMNS} FROM patch_tiers pt JOIN patches p ON p.id = pt.patch_id WHERE ${where}
       ORDER BY pt.added_at, pt.tier`,
      params,
    );
  return {
    async rolloutStatus(patchId: string): Promise<TierRollout[]> {
      const out: TierRollout[] = [];
      for (const r of await tierRows('pt.patch_id = ?', [patchId])) {
        const plan = planOf(r);
        const t: TierRollout = {
          patchId: r.patch_id,
          tier: r.tier,
          wavesOpen: plan ? Number(r.waves_open ?? 1) : 1,
          waves: await countWaves(db, r, plan?.waves ?? [100]),
        };
        if (!plan && t.waves[0]) t.waves[0].openedAt = r.added_at;
        if (plan) t.plan = plan;
        if (r.halted_at) t.haltedAt = r.halted_at;
        if (r.halt_reason) t.haltReason = r.halt_reason;
        if (r.halt_excerpt) t.haltExcerpt = r.halt_excerpt;
        out.push(t);
      }
      return out;
    },

    async listHalts() {
      const rows = await tierRows('pt.halted_at IS NOT NULL AND p.revoked_at IS NULL', []);
      return rows.map((r) => ({
        patchId: r.patch_id,
        tier: r.tier,
        haltedAt: r.halted_at ?? '',
        reason: r.halt_reason ?? '',
      }));
    },

    async advanceRollouts(now: string) {
      const opened: Array<{ patchId: string; tier: string; wave: number }> = [];
      const active = await tierRows(
        'pt.waves IS NOT NULL AND pt.halted_at IS NULL AND p.revoked_at IS NULL',
        [],
      );
      for (const r of active) {
        const plan = planOf(r);
        const open = Number(r.waves_open ?? 1);
        if (!plan || open >= plan.waves.length) continue;
        const times = r.wave_opened_at ? r.wave_opened_at.split(',') : [];
        const since = Date.parse(times[open - 1] ?? r.added_at);
        if (Date.parse(now) - since < plan.soakSeconds * 1000) continue;
        const current = (await countWaves(db, r, plan.waves))[open - 1];
        if (!current || current.healthy < Math.min(plan.gateCheckins, current.size)) continue;
        const changed = await db.tx(async (x) => {
          const n = await x.run(
            `UPDATE patch_tiers SET waves_open = ?, wave_opened_at = ?
             WHERE patch_id = ? AND tier = ? AND waves_open = ? AND halted_at IS NULL`,
            [open + 1, [...times, now].join(','), r.patch_id, r.tier, open],
          );
          if (n === 0) return false; // another instance opened it first, or it was halted
          await insertAudit(x, {
            at: now,
            actor: 'server',
            action: 'rollout.wave-open',
            target: r.patch_id,
            detail: { tier: r.tier, wave: open + 1, percent: plan.waves[open], healthy: current.healthy },
          });
          return true;
        });
        if (changed) opened.push({ patchId: r.patch_id, tier: r.tier, wave: open + 1 });
      }
      return opened;
    },

    haltPatch: (patchId, tier, reason, audit) =>
      db.tx((x) => haltIn(x, patchId, tier, reason, undefined, audit)),

    resumePatch(patchId: string, tier: string, audit: AuditEntry): Promise<HaltOutcome> {
      return db.tx(async (x) => {
        const n = await x.run(
          `UPDATE patch_tiers SET halted_at = NULL, halt_reason = NULL, halt_excerpt = NULL
           WHERE patch_id = ? AND tier = ? AND halted_at IS NOT NULL`,
          [patchId, tier],
        );
        if (n === 0) return (await tierExists(x, patchId, tier)) ? 'unchanged' : 'unknown';
        await insertAudit(x, audit);
        return 'ok';
      });
    },
  };
}

async function tierExists(x: Sql, patchId: string, tier: string): Promise<boolean> {
  const r = await x.get<{ tier: string }>('SELECT tier FROM patch_tiers WHERE patch_id = ? AND tier = ?', [
    patchId,
    tier,
  ]);
  return r !== undefined;
}

/** Halt the patch for the tier inside the caller's transaction (a report's, or an admin's). */
export async function haltIn(
  x: Sql,
  patchId: string,
  tier: string,
  reason: string,
  excerpt: string | undefined,
  audit: AuditEntry,
): Promise<HaltOutcome> {
  const n = await x.run(
    `UPDATE patch_tiers SET halted_at = ?, halt_reason = ?, halt_excerpt = ?
     WHERE patch_id = ? AND tier = ? AND halted_at IS NULL`,
    [audit.at, reason, excerpt ?? null, patchId, tier],
  );
  if (n === 0) return (await tierExists(x, patchId, tier)) ? 'unchanged' : 'unknown';
  await insertAudit(x, audit);
  return 'ok';
}

/** Start the waves of a tier just added to a patch (publish or promote), in the caller's transaction. */
export async function planWaves(
  x: Sql,
  patchId: string,
  tier: string,
  plan: WavePlan,
  now: string,
): Promise<void> {
  await x.run(
    `UPDATE patch_tiers SET waves = ?, gate_checkins = ?, soak_seconds = ?, waves_open = 1, wave_opened_at = ?
     WHERE patch_id = ? AND tier = ?`,
    [plan.waves.join(','), plan.gateCheckins, plan.soakSeconds, now, patchId, tier],
  );
}

/** Whether the tier's rollout of the patch is waved (a failure report then halts it). */
export async function isWaved(x: Sql, patchId: string, tier: string): Promise<boolean> {
  const r = await x.get<{ waves: string | null }>(
    'SELECT waves FROM patch_tiers WHERE patch_id = ? AND tier = ?',
    [patchId, tier],
  );
  return !!r?.waves;
}

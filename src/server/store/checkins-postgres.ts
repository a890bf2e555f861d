/*
 * The PostgreSQL check-in: every check-in of one event-loop turn is one statement on the pool, in
 * parallel, and the first check-ins among them (one patch row to write) share one multi-row insert.
 */

import type { PatchStatus } from '../../manifest/protocol.js';
import type { Db, Sql } from '../db.js';
import type { CheckedInMachine, PendingCheckin } from './checkin-batch.js';
import { syncPatchStates } from './patch-states.js';

/**
 * PostgreSQL: each check-in of the batch is one round trip, all in parallel on the pool — the
 * machine row update and the read of its recorded patch states in one statement (autocommit). Only a
 * machine whose kernel or patch states changed then writes that, from the states it already read: one
 * statement without a transaction when only one patch row is involved (a first check-in), else a
 * transaction (a crash in between loses nothing the next check-in does not restore). (One UPDATE … FROM unnest(…) for the
 * whole batch was tried: the planner hash-joins all machines, 3x slower at 100,000 machines.)
 */
export async function flushPostgres(db: Db, batch: PendingCheckin[]): Promise<void> {
  type Row = {
    id: string;
    tier: string;
    kernel_release: string;
    build_id: string;
    checkins: number | string;
    states: string | null;
  };
  const upserts = new Map<string, Upsert>();
  await Promise.all(
    batch.map(async (b) => {
      const { req, now } = b;
      try {
        const m = await db.get<Row>(
          `WITH m AS (
             UPDATE machines SET last_checkin_at = ?, checkins = checkins + 1, hostname = ?, agent_version = ?
             WHERE credential_hash = ? AND disabled_at IS NULL RETURNING id, tier, kernel_release, build_id, checkins)
           SELECT m.id, m.tier, m.kernel_release, m.build_id, m.checkins,
             (SELECT json_agg(json_build_object('p', patch_id, 's', state, 'r', reason, 't', transition))::text
              FROM machine_patches mp WHERE mp.machine_id = m.id) AS states
           FROM m`,
          [now, req.hostname, req.agentVersion, b.credentialHash],
        );
        if (!m) return b.resolve(undefined);
        const recorded = m.states
          ? (JSON.parse(m.states) as Array<{ p: string; s: string; r: string | null; t: string | null }>)
          : [];
        const same =
          m.kernel_release === req.kernel.release &&
          m.build_id === req.kernel.buildId &&
          recorded.length === req.patches.length &&
          req.patches.every((s) =>
            recorded.some(
              (r) =>
                r.p === s.patchId &&
                r.s === s.state &&
                r.r === (s.reason ?? null) &&
                r.t === (s.transition ? JSON.stringify(s.transition) : null),
            ),
          );
        if (!same) {
          const kernelMoved = m.kernel_release !== req.kernel.release || m.build_id !== req.kernel.buildId;
          const states = recorded.map((r) => ({ patch_id: r.p, state: r.s, reason: r.r, transition: r.t }));
          const write = async (x: Sql) => {
            if (kernelMoved)
              await x.run('UPDATE machines SET kernel_release = ?, build_id = ? WHERE id = ?', [
                req.kernel.release,
                req.kernel.buildId,
                m.id,
              ]);
            await syncPatchStates(x, m, req, now, states);
          };
          const done: CheckedInMachine = {
            id: m.id,
            tier: m.tier,
            kernelRelease: req.kernel.release,
            buildId: req.kernel.buildId,
            sequence: Number(m.checkins),
          };
          // one patch row to upsert (a first check-in, a new state): into the batch's one insert
          const only = req.patches[0];
          const ids = new Set([...req.patches.map((p) => p.patchId), ...recorded.map((r) => r.p)]);
          if (!kernelMoved && only && req.patches.length === 1 && ids.size === 1 && !upserts.has(m.id)) {
            upserts.set(m.id, { b, done, tier: m.tier, status: only, write });
            return;
          }
          // one changed row otherwise needs no transaction: it is one statement
          if (!kernelMoved && ids.size <= 1) await write(db);
          else await db.tx(write);
          return b.resolve(done);
        }
        b.resolve({
          id: m.id,
          tier: m.tier,
          kernelRelease: req.kernel.release,
          buildId: req.kernel.buildId,
          sequence: Number(m.checkins),
        });
      } catch (e) {
        b.reject(e);
      }
    }),
  );
  if (upserts.size) await upsertAll(db, [...upserts.values()]);
}

interface Upsert {
  b: PendingCheckin;
  done: CheckedInMachine;
  tier: string;
  status: PatchStatus;
  /** the same write alone, if the batch's insert fails */
  write: (x: Sql) => Promise<void>;
}

/**
 * The batch's single-row state changes as one INSERT … SELECT FROM unnest(…) (at most one row per
 * machine, so ON CONFLICT never meets a row twice), with the same MAY_REPORT rule as one by one. If it
 * fails, each is written alone so one bad row cannot fail the others.
 */
async function upsertAll(db: Db, rows: Upsert[]): Promise<void> {
  const col = (f: (u: Upsert) => string | null) => rows.map(f);
  try {
    await db.run(
      `INSERT INTO machine_patches (machine_id, patch_id, state, reason, transition, updated_at)
       SELECT u.m, p.id, u.s, u.r, u.t, u.at
       FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
         AS u(m, pid, s, r, t, at, rel, bid, tier)
       JOIN patches p ON p.id = u.pid
       WHERE ((p.kernel_release = u.rel AND p.build_id = u.bid
           AND EXISTS (SELECT 1 FROM patch_tiers pt WHERE pt.patch_id = p.id AND pt.tier = u.tier))
         OR EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = u.m AND x.patch_id = p.id))
       ON CONFLICT (machine_id, patch_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
         transition = excluded.transition, updated_at = excluded.updated_at`,
      [
        col((u) => u.done.id),
        col((u) => u.status.patchId),
        col((u) => u.status.state),
        col((u) => u.status.reason ?? null),
        col((u) => (u.status.transition ? JSON.stringify(u.status.transition) : null)),
        col((u) => u.b.now),
        col((u) => u.b.req.kernel.release),
        col((u) => u.b.req.kernel.buildId),
        col((u) => u.tier),
      ],
    );
    for (const u of rows) u.b.resolve(u.done);
  } catch {
    for (const u of rows) {
      try {
        await u.write(db);
        u.b.resolve(u.done);
      } catch (e) {
        u.b.reject(e);
      }
    }
  }
}

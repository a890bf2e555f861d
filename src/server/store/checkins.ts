/*
 * Check-ins and reports, the machine API's hot path: a machine authenticates by the sha256 of its
 * credential, its row is updated (last seen, kernel, agent version) and its recorded patch states are
 * brought in line with what the agent says, writing only what changed.
 *
 * SQLite and PostgreSQL differ here, and only here: SQLite (one writer) group-commits the check-ins of
 * one event-loop turn in one transaction; PostgreSQL runs each check-in as one statement on the pool.
 */
import type { CheckinRequest, ReportRequest } from '../../manifest/protocol.js';
import type { Db, Sql } from '../db.js';

export interface AuthenticatedMachine {
  id: string;
  tier: string;
  kernelRelease: string;
  buildId: string;
}

/** A machine that just checked in: `sequence` is its check-in count, this one included (signed answers). */
export interface CheckedInMachine extends AuthenticatedMachine {
  sequence: number;
}

export interface CheckinStore {
  /** Record a check-in (last seen, kernel, patch states); undefined when the credential is unknown. */
  checkin(credentialHash: string, req: CheckinRequest, now: string): Promise<CheckedInMachine | undefined>;
  /** Record an apply/revert result; 'unknown-patch' when the patch id is not ours. */
  report(
    credentialHash: string,
    req: ReportRequest,
    now: string,
  ): Promise<AuthenticatedMachine | undefined | 'unknown-patch'>;
  machineByCredential(credentialHash: string): Promise<AuthenticatedMachine | undefined>;
}

async function syncPatchStates(t: Sql, machineId: string, req: CheckinRequest, now: string): Promise<void> {
  const existing = await t.all<{
    patch_id: string;
    state: string;
    reason: string | null;
    transition: string | null;
  }>('SELECT patch_id, state, reason, transition FROM machine_patches WHERE machine_id = ?', [machineId]);
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
    // patches this server does not know (another server's, or forged ids) are ignored
    await t.run(
      `INSERT INTO machine_patches (machine_id, patch_id, state, reason, transition, updated_at)
       SELECT ?, id, ?, ?, ?, ? FROM patches WHERE id = ?
       ON CONFLICT (machine_id, patch_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
         transition = excluded.transition, updated_at = excluded.updated_at`,
      [machineId, s.state, reason, transition, now, s.patchId],
    );
  }
}

interface PendingCheckin {
  credentialHash: string;
  req: CheckinRequest;
  now: string;
  resolve: (m: CheckedInMachine | undefined) => void;
  reject: (e: unknown) => void;
}

// only unindexed columns: rewriting kernel_release/build_id (indexed) on every check-in costs 4x
const CHECKIN_SQL = `UPDATE machines SET last_checkin_at = ?, checkins = checkins + 1, hostname = ?, agent_version = ?
  WHERE credential_hash = ? RETURNING id, tier, kernel_release, build_id, checkins`;

async function checkinOne(
  x: Sql,
  credentialHash: string,
  req: CheckinRequest,
  now: string,
): Promise<CheckedInMachine | undefined> {
  type Row = {
    id: string;
    tier: string;
    kernel_release: string;
    build_id: string;
    checkins: number | string;
  };
  const m = await x.get<Row>(CHECKIN_SQL, [now, req.hostname, req.agentVersion, credentialHash]);
  if (!m) return undefined;
  if (m.kernel_release !== req.kernel.release || m.build_id !== req.kernel.buildId) {
    await x.run('UPDATE machines SET kernel_release = ?, build_id = ? WHERE id = ?', [
      req.kernel.release,
      req.kernel.buildId,
      m.id,
    ]);
  }
  await syncPatchStates(x, m.id, req, now);
  return {
    id: m.id,
    tier: m.tier,
    kernelRelease: req.kernel.release,
    buildId: req.kernel.buildId,
    sequence: Number(m.checkins),
  };
}

/**
 * PostgreSQL: each check-in of the batch is one round trip, all in parallel on the pool — the
 * machine row update and the read of its recorded patch states in one statement (autocommit). Only a
 * machine whose kernel or patch states changed then gets a transaction writing that (a crash in
 * between loses nothing the next check-in does not restore). (One UPDATE … FROM unnest(…) for the
 * whole batch was tried: the planner hash-joins all machines, 3x slower at 100,000 machines.)
 */
async function flushPostgres(db: Db, batch: PendingCheckin[]): Promise<void> {
  type Row = {
    id: string;
    tier: string;
    kernel_release: string;
    build_id: string;
    checkins: number | string;
    states: string | null;
  };
  await Promise.all(
    batch.map(async (b) => {
      const { req, now } = b;
      try {
        const m = await db.get<Row>(
          `WITH m AS (
             UPDATE machines SET last_checkin_at = ?, checkins = checkins + 1, hostname = ?, agent_version = ?
             WHERE credential_hash = ? RETURNING id, tier, kernel_release, build_id, checkins)
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
          await db.tx(async (x) => {
            await x.run('UPDATE machines SET kernel_release = ?, build_id = ? WHERE id = ?', [
              req.kernel.release,
              req.kernel.buildId,
              m.id,
            ]);
            await syncPatchStates(x, m.id, req, now);
          });
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
}

/** SQLite: the whole batch in one transaction; if it fails, each check-in alone. */
async function flushSqlite(db: Db, batch: PendingCheckin[]): Promise<void> {
  try {
    const results = await db.tx(async (x) => {
      const out: Array<CheckedInMachine | undefined> = [];
      for (const b of batch) out.push(await checkinOne(x, b.credentialHash, b.req, b.now));
      return out;
    });
    for (const [i, b] of batch.entries()) b.resolve(results[i]);
  } catch {
    for (const b of batch) {
      try {
        b.resolve(await db.tx((x) => checkinOne(x, b.credentialHash, b.req, b.now)));
      } catch (e) {
        b.reject(e);
      }
    }
  }
}

export function sqlCheckins(db: Db): CheckinStore {
  let pending: PendingCheckin[] = [];
  let flushScheduled = false;

  async function flush(): Promise<void> {
    const batch = pending;
    pending = [];
    flushScheduled = false;
    if (db.kind === 'postgres') {
      try {
        await flushPostgres(db, batch);
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
      return;
    }
    await flushSqlite(db, batch);
  }

  return {
    /**
     * The hot path: update the machine row, then bring its recorded patch states in line with the
     * agent's list, writing only what changed (a steady fleet writes one row per check-in).
     *
     * On SQLite (one writer, synchronous) check-ins are group-committed: every check-in that arrived in
     * the same event-loop turn is written in one transaction, flushed on `setImmediate`, and each caller
     * is answered only after that commit — durability per check-in, one WAL commit per batch. If the batch
     * fails, its check-ins are retried one by one so one bad row cannot fail the others. On PostgreSQL
     * every check-in is one statement on a pooled connection, in parallel (flushPostgres).
     */
    checkin(credentialHash: string, req: CheckinRequest, now: string): Promise<CheckedInMachine | undefined> {
      return new Promise((resolve, reject) => {
        pending.push({ credentialHash, req, now, resolve, reject });
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(() => void flush());
        }
      });
    },

    report(
      credentialHash: string,
      req: ReportRequest,
      now: string,
    ): Promise<AuthenticatedMachine | undefined | 'unknown-patch'> {
      return db.tx(async (x) => {
        const m = await x.get<{ id: string; tier: string; kernel_release: string; build_id: string }>(
          'SELECT id, tier, kernel_release, build_id FROM machines WHERE credential_hash = ?',
          [credentialHash],
        );
        if (!m) return undefined;
        const p = await x.get<{ id: string }>('SELECT id FROM patches WHERE id = ?', [req.status.patchId]);
        if (!p) return 'unknown-patch' as const;
        const s = req.status;
        await x.run(
          `INSERT INTO machine_patches (machine_id, patch_id, state, reason, transition, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (machine_id, patch_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
             transition = excluded.transition, updated_at = excluded.updated_at`,
          [
            m.id,
            s.patchId,
            s.state,
            s.reason ?? null,
            s.transition ? JSON.stringify(s.transition) : null,
            now,
          ],
        );
        await x.run(
          'INSERT INTO reports (machine_id, patch_id, action, state, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
          [m.id, s.patchId, req.action, s.state, s.reason ?? null, now],
        );
        return { id: m.id, tier: m.tier, kernelRelease: m.kernel_release, buildId: m.build_id };
      });
    },

    async machineByCredential(credentialHash: string): Promise<AuthenticatedMachine | undefined> {
      const m = await db.get<{ id: string; tier: string; kernel_release: string; build_id: string }>(
        'SELECT id, tier, kernel_release, build_id FROM machines WHERE credential_hash = ?',
        [credentialHash],
      );
      return m && { id: m.id, tier: m.tier, kernelRelease: m.kernel_release, buildId: m.build_id };
    },
  };
}

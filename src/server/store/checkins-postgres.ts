/*
 * The PostgreSQL check-in. The check-ins of one event-loop turn share statements: one
 * UPDATE … FROM unnest(…) for every machine row of the batch (its recorded patch states read in the
 * same statement), then one multi-row INSERT for the first check-ins among them (one patch row each).
 * Only a machine whose kernel moved or whose several patch rows changed gets its own transaction.
 */
import type { PatchStatus } from '../../manifest/protocol.js';
import type { Db, Sql } from '../db.js';
import type { CheckedInMachine, PendingCheckin } from './checkin-batch.js';
import { syncPatchStates } from './patch-states.js';

interface MachineRow {
  ord: number | string;
  id: string;
  tier: string;
  kernel_release: string;
  build_id: string;
  checkins: number | string;
  states: string | null;
}

/** rows per statement: a planner-friendly size (nested loop over the credential index) */
const CHUNK = 500;

// the machine rows of a batch and their recorded states; a nested loop over the unique credential
// index (EXPLAIN at 100,000 machines), ~13x cheaper per row than one statement each on one connection
const UPDATE_MANY = `WITH u AS (
    SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS u(hash, host, agent, at, ord)),
  m AS (
    UPDATE machines SET last_checkin_at = u.at, checkins = machines.checkins + 1, hostname = u.host,
      agent_version = u.agent
    FROM u WHERE machines.credential_hash = u.hash AND machines.disabled_at IS NULL
    RETURNING u.ord, machines.id, machines.tier, machines.kernel_release, machines.build_id, machines.checkins)
  SELECT m.ord, m.id, m.tier, m.kernel_release, m.build_id, m.checkins,
    (SELECT json_agg(json_build_object('p', patch_id, 's', state, 'r', reason, 't', transition))::text
     FROM machine_patches mp WHERE mp.machine_id = m.id) AS states
  FROM m`;

/**
 * Flush one batch: each credential once per statement (a machine checking in twice in one turn has
 * its second check-in in the next statement, so both count), then the state writes.
 */
export async function flushPostgres(db: Db, batch: PendingCheckin[]): Promise<void> {
  const upserts = new Map<string, Upsert>();
  let rest = batch;
  while (rest.length) {
    const seen = new Set<string>();
    const now: PendingCheckin[] = [];
    const later: PendingCheckin[] = [];
    for (const b of rest) {
      if (seen.has(b.credentialHash) || now.length >= CHUNK) later.push(b);
      else {
        seen.add(b.credentialHash);
        now.push(b);
      }
    }
    await updateMany(db, now, upserts);
    // a machine's later check-in of this turn must write after its earlier one
    if (later.length && upserts.size) {
      await upsertAll(db, [...upserts.values()]);
      upserts.clear();
    }
    rest = later;
  }
  if (upserts.size) await upsertAll(db, [...upserts.values()]);
}

async function updateMany(db: Db, batch: PendingCheckin[], upserts: Map<string, Upsert>): Promise<void> {
  let rows: MachineRow[];
  try {
    rows = await db.all<MachineRow>(UPDATE_MANY, [
      batch.map((b) => b.credentialHash),
      batch.map((b) => b.req.hostname),
      batch.map((b) => b.req.agentVersion),
      batch.map((b) => b.now),
    ]);
  } catch (e) {
    for (const b of batch) b.reject(e);
    return;
  }
  const byOrd = new Map(rows.map((r) => [Number(r.ord), r]));
  await Promise.all(
    batch.map(async (b, i) => {
      const m = byOrd.get(i + 1);
      if (!m) return b.resolve(undefined);
      try {
        await afterUpdate(db, b, m, upserts);
      } catch (e) {
        b.reject(e);
      }
    }),
  );
}

/**
 * What follows a machine's row update: nothing when its kernel and states are as recorded (a steady
 * fleet); one patch row to upsert goes to the batch's insert; anything else is written here.
 */
async function afterUpdate(
  db: Db,
  b: PendingCheckin,
  m: MachineRow,
  upserts: Map<string, Upsert>,
): Promise<void> {
  const { req, now } = b;
  const done: CheckedInMachine = {
    id: m.id,
    tier: m.tier,
    kernelRelease: req.kernel.release,
    buildId: req.kernel.buildId,
    sequence: Number(m.checkins),
  };
  const recorded = m.states
    ? (JSON.parse(m.states) as Array<{ p: string; s: string; r: string | null; t: string | null }>)
    : [];
  const kernelMoved = m.kernel_release !== req.kernel.release || m.build_id !== req.kernel.buildId;
  const same =
    !kernelMoved &&
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
  if (same) return b.resolve(done);
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
  const only = req.patches[0];
  const ids = new Set([...req.patches.map((p) => p.patchId), ...recorded.map((r) => r.p)]);
  if (!kernelMoved && only && req.patches.length === 1 && ids.size === 1 && !upserts.has(m.id)) {
    upserts.set(m.id, { b, done, tier: m.tier, status: only, write });
    return;
  }
  // one changed row otherwise needs no transaction: it is one statement
  if (!kernelMoved && ids.size <= 1) await write(db);
  else await db.tx(write);
  b.resolve(done);
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

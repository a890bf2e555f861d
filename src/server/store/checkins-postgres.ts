/*
 * The PostgreSQL check-in. The check-ins of one batch (checkins.ts gathers them while earlier batches
 * are written) share a statement (a large batch: up to three, run at once): an UPDATE … FROM unnest(…)
 * of every machine row, its recorded patch states read, and the changed state of each machine
 * reporting one patch written, in one round trip (a steady fleet and the first check-in after an apply
 * alike). Only a machine whose kernel moved or that reports several patches, or drops one, gets
 * statements of its own.
 */
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
  /** the statement wrote the one patch state the machine reported */
  wrote: boolean;
}

/** rows per statement: a planner-friendly size (nested loop over the credential index) */
const CHUNK = 500;
/**
 * A batch is cut into up to this many statements of at least MIN_ROWS rows, run at once on their own
 * connections: one statement is one backend on one core, and while it runs the server answers
 * nothing of its batch. Three of ~20 rows made 64 connections 1.2–1.3x faster than one of ~60 rows
 * (100,000 machines, two cores). Each credential is in one of them only, so they touch no row twice.
 */
const PARALLEL_STATEMENTS = 3;
const MIN_ROWS = 16;

// the machine rows of a batch and their recorded states; a nested loop over the unique credential
// index (EXPLAIN at 100,000 machines), ~13x cheaper per row than one statement each on one connection.
// In the same statement, a machine that reports one patch (and has no other recorded) gets that
// patch's state written when it changed (`w`: the first check-in after an apply, a transition), under
// the rule of MAY_REPORT (patch-states.ts): its kernel as recorded, the patch offered to it or already
// recorded for it. `states` is read before that write (one snapshot); `wrote` says it happened.
// A state reported as recorded (a steady fleet) is left out first: no conflict to resolve, no row
// locked — half the statement's cost at 100,000 machines. The recorded row is looked up by machine and
// patch only, so that the plan (cached, generic) takes the primary key even when it was made on an
// empty table: with the state in the condition, (patch_id, state) looked as good, and read every
// machine's row of the patch at each check-in.
const UPDATE_MANY = `WITH u AS (
    SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
      ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS u(hash, host, agent, at, pid, s, r, t, rel, bid, ord)),
  m AS (
    UPDATE machines SET last_checkin_at = u.at, checkins = machines.checkins + 1, hostname = u.host,
      agent_version = u.agent
    FROM u WHERE machines.credential_hash = u.hash AND machines.disabled_at IS NULL
    RETURNING u.ord, machines.id, machines.tier, machines.kernel_release, machines.build_id, machines.checkins),
  w AS (
    INSERT INTO machine_patches (machine_id, patch_id, state, reason, transition, updated_at)
    SELECT m.id, p.id, u.s, u.r, u.t, u.at
    FROM m JOIN u ON u.ord = m.ord JOIN patches p ON p.id = u.pid
    WHERE m.kernel_release = u.rel AND m.build_id = u.bid
      AND (SELECT ROW(e.state, e.reason, e.transition) FROM machine_patches e
        WHERE e.machine_id = m.id AND e.patch_id = u.pid) IS DISTINCT FROM ROW(u.s, u.r, u.t)
      AND NOT EXISTS (SELECT 1 FROM machine_patches o WHERE o.machine_id = m.id AND o.patch_id <> u.pid)
      AND ((p.kernel_release = u.rel AND p.build_id = u.bid
          AND EXISTS (SELECT 1 FROM patch_tiers pt WHERE pt.patch_id = p.id AND pt.tier = m.tier))
        OR EXISTS (SELECT 1 FROM machine_patches y WHERE y.machine_id = m.id AND y.patch_id = p.id))
    ON CONFLICT (machine_id, patch_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
      transition = excluded.transition, updated_at = excluded.updated_at
      WHERE (machine_patches.state, machine_patches.reason, machine_patches.transition)
        IS DISTINCT FROM (excluded.state, excluded.reason, excluded.transition)
    RETURNING machine_id)
  SELECT m.ord, m.id, m.tier, m.kernel_release, m.build_id, m.checkins,
    (SELECT json_agg(json_build_object('p', patch_id, 's', state, 'r', reason, 't', transition))::text
     FROM machine_patches mp WHERE mp.machine_id = m.id) AS states,
    EXISTS (SELECT 1 FROM w WHERE w.machine_id = m.id) AS wrote
  FROM m`;

/**
 * Flush one batch: each credential once per round of statements (a machine checking in twice in one
 * batch has its second check-in in the next round, written after the first, so both count in order).
 */
export async function flushPostgres(db: Db, batch: PendingCheckin[]): Promise<void> {
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
    await Promise.all(parallelParts(now).map((part) => updateMany(db, part)));
    rest = later;
  }
}

/** `rows` cut into PARALLEL_STATEMENTS parts at most, none under MIN_ROWS (one when it is small). */
function parallelParts<T>(rows: T[]): T[][] {
  const parts = Math.max(1, Math.min(PARALLEL_STATEMENTS, Math.floor(rows.length / MIN_ROWS)));
  const size = Math.ceil(rows.length / parts);
  return Array.from({ length: parts }, (_, i) => rows.slice(i * size, (i + 1) * size));
}

async function updateMany(db: Db, batch: PendingCheckin[]): Promise<void> {
  let rows: MachineRow[];
  try {
    // the one reported patch, or none (nothing to write in the statement)
    const one = batch.map((b) => (b.req.patches.length === 1 ? b.req.patches[0] : undefined));
    rows = await db.all<MachineRow>(UPDATE_MANY, [
      batch.map((b) => b.credentialHash),
      batch.map((b) => b.req.hostname),
      batch.map((b) => b.req.agentVersion),
      batch.map((b) => b.now),
      one.map((p) => p?.patchId ?? null),
      one.map((p) => p?.state ?? null),
      one.map((p) => p?.reason ?? null),
      one.map((p) => (p?.transition ? JSON.stringify(p.transition) : null)),
      batch.map((b) => b.req.kernel.release),
      batch.map((b) => b.req.kernel.buildId),
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
        await afterUpdate(db, b, m);
      } catch (e) {
        b.reject(e);
      }
    }),
  );
}

/**
 * What follows a machine's row update: nothing when its kernel and states are as recorded (a steady
 * fleet) or the statement wrote its one state; anything else is written here.
 */
async function afterUpdate(db: Db, b: PendingCheckin, m: MachineRow): Promise<void> {
  const { req, now } = b;
  const done: CheckedInMachine = {
    id: m.id,
    tier: m.tier,
    kernelRelease: req.kernel.release,
    buildId: req.kernel.buildId,
    sequence: Number(m.checkins),
  };
  if (m.wrote) return b.resolve(done);
  const recorded = m.states
    ? (JSON.parse(m.states) as Array<{ p: string; s: string; r: string | null; t: string | null }>)
    : [];
  const kernelMoved = m.kernel_release !== req.kernel.release || m.build_id !== req.kernel.buildId;
  const ids = new Set([...req.patches.map((p) => p.patchId), ...recorded.map((r) => r.p)]);
  // one patch, no other recorded, the kernel as recorded: the statement wrote it if it changed and
  // this machine may report it (MAY_REPORT); not written, it is the same or not the machine's to report
  if (!kernelMoved && req.patches.length === 1 && ids.size === 1) return b.resolve(done);
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
  // one changed row otherwise needs no transaction: it is one statement
  if (!kernelMoved && ids.size <= 1) await write(db);
  else await db.tx(write);
  b.resolve(done);
}

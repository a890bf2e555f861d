/*
 * The store: everything the server remembers, behind one interface.
 *
 * `Store` is what the HTTP layer sees. `SqlStore` implements it once over a `Db` (db.ts), and
 * `openStore` picks the engine: SQLite (one WAL file under the data directory, the default) or
 * PostgreSQL (`postgres://…`, for several server instances behind one load balancer). Every change that
 * touches more than one row is one transaction: a publish, a promote, a revoke, an enrollment, a
 * check-in. Secrets arrive here already hashed (credentials.ts); the store never sees them in clear.
 *
 * Tiers: a patch carries a set of tiers. Publishing puts it in one (`canary`), promoting adds another
 * (`stable`); a machine is offered the patch when its own tier is in that set. Revoking a patch takes
 * it out of every offer and puts it in the revoke list of every machine that could have it.
 */
import type { Manifest } from '../manifest/manifest.js';
import type { CheckinRequest, PatchState, ReportRequest, Transition } from '../manifest/protocol.js';
import { type Db, PostgresDb, type Sql, SqliteDb } from './db.js';
import { postgresSchema, sqliteSchema } from './schema.js';

export interface PatchRecord {
  id: string;
  name: string;
  version: string;
  kernelRelease: string;
  buildId: string;
  moduleName: string;
  manifest: Manifest;
  signature: string;
  sha256: string;
  size: number;
  cves: string[];
  description: string;
  publishedAt: string;
  revokedAt?: string;
  revokeReason?: string;
  tiers: string[];
}

export interface TokenRecord {
  id: string;
  tier: string;
  note: string;
  maxUses?: number;
  uses: number;
  expiresAt?: string;
  createdAt: string;
  revokedAt?: string;
}

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

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export interface EnrollInput {
  tokenHash: string;
  machineId: string;
  credentialHash: string;
  hostname: string;
  kernelRelease: string;
  buildId: string;
  agentVersion: string;
  now: string;
}

export type EnrollOutcome =
  | { ok: true; tier: string }
  | { ok: false; reason: 'unknown' | 'revoked' | 'expired' | 'exhausted' };

export interface AuthenticatedMachine {
  id: string;
  tier: string;
  kernelRelease: string;
  buildId: string;
}

export type ChangeOutcome = 'ok' | 'unknown' | 'revoked' | 'unchanged';

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  init(): Promise<void>;
  close(): Promise<void>;

  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
  /** Insert unless present; returns the value that is stored (ours or the one already there). */
  setSettingIfAbsent(key: string, value: string): Promise<string>;

  createToken(t: TokenRecord & { hash: string }, audit: AuditEntry): Promise<void>;
  listTokens(): Promise<TokenRecord[]>;
  enroll(e: EnrollInput): Promise<EnrollOutcome>;

  /** Record a check-in (last seen, kernel, patch states); undefined when the credential is unknown. */
  checkin(
    credentialHash: string,
    req: CheckinRequest,
    now: string,
  ): Promise<AuthenticatedMachine | undefined>;
  /** Record an apply/revert result; 'unknown-patch' when the patch id is not ours. */
  report(
    credentialHash: string,
    req: ReportRequest,
    now: string,
  ): Promise<AuthenticatedMachine | undefined | 'unknown-patch'>;
  machineByCredential(credentialHash: string): Promise<AuthenticatedMachine | undefined>;

  /** Non-revoked patches for this exact kernel whose tiers include `tier`, newest first. */
  offers(release: string, buildId: string, tier: string): Promise<PatchRecord[]>;
  /** Revoked patches of this exact kernel the machine's tier could have received. */
  revokedFor(release: string, buildId: string, tier: string): Promise<PatchRecord[]>;

  publish(p: PatchRecord, audit: AuditEntry): Promise<'ok' | 'exists'>;
  promote(patchId: string, tier: string, audit: AuditEntry, now: string): Promise<ChangeOutcome>;
  revoke(patchId: string, reason: string, audit: AuditEntry, now: string): Promise<ChangeOutcome>;
  /** Move a machine to another tier: from its next check-in it is offered that tier's patches. */
  setMachineTier(machineId: string, tier: string, audit: AuditEntry): Promise<'ok' | 'unknown' | 'unchanged'>;
  getPatch(id: string): Promise<PatchRecord | undefined>;
  listPatches(): Promise<PatchRecord[]>;

  listMachines(limit?: number): Promise<MachineRecord[]>;
  getMachine(id: string): Promise<MachineDetail | undefined>;
  listKernels(): Promise<KernelSummary[]>;
  listAudit(limit?: number): Promise<AuditEntry[]>;

  /** machines grouped by exact kernel, tier and summary state */
  fleet(): Promise<
    Array<{ release: string; buildId: string; tier: string; state: MachineState; machines: number }>
  >;
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

  /** Insert many already-enrolled machines at once (benchmark and import). */
  bulkInsertMachines(
    tokenId: string,
    rows: Array<Omit<EnrollInput, 'tokenHash' | 'now'> & { tier: string }>,
    now: string,
  ): Promise<void>;
  /** Keep a verified module's bytes under its sha256 (a no-op when present). */
  putBlob(sha256: string, data: Buffer, now: string): Promise<void>;
  blobSize(sha256: string): Promise<number | undefined>;
  blobData(sha256: string): Promise<Buffer | undefined>;

  /** Every row of every table, for tests proving that bad input changed nothing. */
  dump(): Promise<Record<string, unknown[]>>;
}

// ---------------------------------------------------------------------------------------------------

interface PatchRow {
  id: string;
  name: string;
  version: string;
  kernel_release: string;
  build_id: string;
  module_name: string;
  manifest: string;
  signature: string;
  sha256: string;
  size: number | string;
  cves: string;
  description: string;
  published_at: string;
  revoked_at: string | null;
  revoke_reason: string | null;
  tiers: string | null;
}

const PATCH_COLUMNS = `p.id, p.name, p.version, p.kernel_release, p.build_id, p.module_name, p.manifest, p.signature,
  p.sha256, p.size, p.cves, p.description, p.published_at, p.revoked_at, p.revoke_reason`;

function toPatch(r: PatchRow, tiers?: string[]): PatchRecord {
  const p: PatchRecord = {
    id: r.id,
    name: r.name,
    version: r.version,
    kernelRelease: r.kernel_release,
    buildId: r.build_id,
    moduleName: r.module_name,
    manifest: JSON.parse(r.manifest) as Manifest,
    signature: r.signature,
    sha256: r.sha256,
    size: Number(r.size),
    cves: JSON.parse(r.cves) as string[],
    description: r.description,
    publishedAt: r.published_at,
    tiers: tiers ?? (r.tiers ? r.tiers.split(',').sort() : []),
  };
  if (r.revoked_at) p.revokedAt = r.revoked_at;
  if (r.revoke_reason) p.revokeReason = r.revoke_reason;
  return p;
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
  return m;
}

const MACHINE_STATE = `CASE
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state = 'failed') THEN 'failed'
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state = 'transition') THEN 'transition'
  WHEN EXISTS (SELECT 1 FROM machine_patches x WHERE x.machine_id = m.id AND x.state = 'applied') THEN 'applied'
  ELSE 'none' END`;

const MACHINE_COLUMNS = `m.id, m.tier, m.hostname, m.kernel_release, m.build_id, m.agent_version, m.enrolled_at,
  m.last_checkin_at, m.checkins, ${MACHINE_STATE} AS state`;

/** string_agg vs group_concat: the one place the dialects differ in a query */
function tiersAgg(kind: Db['kind']): string {
  return kind === 'sqlite'
    ? `(SELECT group_concat(tier, ',') FROM patch_tiers t WHERE t.patch_id = p.id)`
    : `(SELECT string_agg(tier, ',') FROM patch_tiers t WHERE t.patch_id = p.id)`;
}

async function insertAudit(t: Sql, a: AuditEntry): Promise<void> {
  await t.run('INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)', [
    a.at,
    a.actor,
    a.action,
    a.target,
    JSON.stringify(a.detail),
  ]);
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
  resolve: (m: AuthenticatedMachine | undefined) => void;
  reject: (e: unknown) => void;
}

// only unindexed columns: rewriting kernel_release/build_id (indexed) on every check-in costs 4x
const CHECKIN_SQL = `UPDATE machines SET last_checkin_at = ?, checkins = checkins + 1, hostname = ?, agent_version = ?
  WHERE credential_hash = ? RETURNING id, tier, kernel_release, build_id`;

async function checkinOne(
  x: Sql,
  credentialHash: string,
  req: CheckinRequest,
  now: string,
): Promise<AuthenticatedMachine | undefined> {
  const m = await x.get<{ id: string; tier: string; kernel_release: string; build_id: string }>(CHECKIN_SQL, [
    now,
    req.hostname,
    req.agentVersion,
    credentialHash,
  ]);
  if (!m) return undefined;
  if (m.kernel_release !== req.kernel.release || m.build_id !== req.kernel.buildId) {
    await x.run('UPDATE machines SET kernel_release = ?, build_id = ? WHERE id = ?', [
      req.kernel.release,
      req.kernel.buildId,
      m.id,
    ]);
  }
  await syncPatchStates(x, m.id, req, now);
  return { id: m.id, tier: m.tier, kernelRelease: req.kernel.release, buildId: req.kernel.buildId };
}

export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  constructor(readonly db: Db) {
    this.kind = db.kind;
  }

  async init(): Promise<void> {
    await this.db.exec(this.kind === 'sqlite' ? sqliteSchema : postgresSchema);
    await this.setSettingIfAbsent('schema_version', '1');
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async getSetting(key: string): Promise<string | undefined> {
    return (await this.db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]))?.value;
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.db.run(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      [key, value],
    );
  }

  async setSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.db.run('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [
      key,
      value,
    ]);
    return (await this.getSetting(key)) ?? value;
  }

  async createToken(t: TokenRecord & { hash: string }, audit: AuditEntry): Promise<void> {
    await this.db.tx(async (x) => {
      await x.run(
        `INSERT INTO tokens (id, hash, tier, note, max_uses, uses, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, 0, ?, ?)`,
        [t.id, t.hash, t.tier, t.note, t.maxUses ?? null, t.expiresAt ?? null, t.createdAt],
      );
      await insertAudit(x, audit);
    });
  }

  async listTokens(): Promise<TokenRecord[]> {
    const rows = await this.db.all<{
      id: string;
      tier: string;
      note: string;
      max_uses: number | null;
      uses: number | string;
      expires_at: string | null;
      created_at: string;
      revoked_at: string | null;
    }>(
      'SELECT id, tier, note, max_uses, uses, expires_at, created_at, revoked_at FROM tokens ORDER BY created_at, id',
    );
    return rows.map((r) => {
      const t: TokenRecord = {
        id: r.id,
        tier: r.tier,
        note: r.note,
        uses: Number(r.uses),
        createdAt: r.created_at,
      };
      if (r.max_uses !== null) t.maxUses = Number(r.max_uses);
      if (r.expires_at) t.expiresAt = r.expires_at;
      if (r.revoked_at) t.revokedAt = r.revoked_at;
      return t;
    });
  }

  enroll(e: EnrollInput): Promise<EnrollOutcome> {
    return this.db.tx(async (x) => {
      const t = await x.get<{
        id: string;
        tier: string;
        max_uses: number | null;
        uses: number | string;
        expires_at: string | null;
        revoked_at: string | null;
      }>('SELECT id, tier, max_uses, uses, expires_at, revoked_at FROM tokens WHERE hash = ?', [e.tokenHash]);
      if (!t) return { ok: false, reason: 'unknown' } as const;
      if (t.revoked_at) return { ok: false, reason: 'revoked' } as const;
      if (t.expires_at && t.expires_at <= e.now) return { ok: false, reason: 'expired' } as const;
      if (t.max_uses !== null && Number(t.uses) >= Number(t.max_uses))
        return { ok: false, reason: 'exhausted' } as const;
      // conditional increment: concurrent enrollments (PostgreSQL, READ COMMITTED) cannot overshoot max_uses
      const taken = await x.run(
        'UPDATE tokens SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)',
        [t.id],
      );
      if (taken === 0) return { ok: false, reason: 'exhausted' } as const;
      await x.run(
        `INSERT INTO machines (id, credential_hash, tier, hostname, kernel_release, build_id, agent_version, token_id,
           enrolled_at, checkins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
        [
          e.machineId,
          e.credentialHash,
          t.tier,
          e.hostname,
          e.kernelRelease,
          e.buildId,
          e.agentVersion,
          t.id,
          e.now,
        ],
      );
      return { ok: true, tier: t.tier } as const;
    });
  }

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
  checkin(
    credentialHash: string,
    req: CheckinRequest,
    now: string,
  ): Promise<AuthenticatedMachine | undefined> {
    return new Promise((resolve, reject) => {
      this.pendingCheckins.push({ credentialHash, req, now, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flushCheckins());
      }
    });
  }

  /**
   * PostgreSQL: each check-in of the batch is one round trip, all in parallel on the pool — the
   * machine row update and the read of its recorded patch states in one statement (autocommit). Only a
   * machine whose kernel or patch states changed then gets a transaction writing that (a crash in
   * between loses nothing the next check-in does not restore). (One UPDATE … FROM unnest(…) for the
   * whole batch was tried: the planner hash-joins all machines, 3x slower at 100,000 machines.)
   */
  private async flushPostgres(batch: PendingCheckin[]): Promise<void> {
    type Row = { id: string; tier: string; kernel_release: string; build_id: string; states: string | null };
    await Promise.all(
      batch.map(async (b) => {
        const { req, now } = b;
        try {
          const m = await this.db.get<Row>(
            `WITH m AS (
               UPDATE machines SET last_checkin_at = ?, checkins = checkins + 1, hostname = ?, agent_version = ?
               WHERE credential_hash = ? RETURNING id, tier, kernel_release, build_id)
             SELECT m.id, m.tier, m.kernel_release, m.build_id,
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
            await this.db.tx(async (x) => {
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
          });
        } catch (e) {
          b.reject(e);
        }
      }),
    );
  }

  private pendingCheckins: PendingCheckin[] = [];
  private flushScheduled = false;

  private async flushCheckins(): Promise<void> {
    const batch = this.pendingCheckins;
    this.pendingCheckins = [];
    this.flushScheduled = false;
    if (this.kind === 'postgres') {
      try {
        await this.flushPostgres(batch);
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
      return;
    }
    try {
      const results = await this.db.tx(async (x) => {
        const out: Array<AuthenticatedMachine | undefined> = [];
        for (const b of batch) out.push(await checkinOne(x, b.credentialHash, b.req, b.now));
        return out;
      });
      for (const [i, b] of batch.entries()) b.resolve(results[i]);
    } catch {
      for (const b of batch) {
        try {
          b.resolve(await this.db.tx((x) => checkinOne(x, b.credentialHash, b.req, b.now)));
        } catch (e) {
          b.reject(e);
        }
      }
    }
  }

  report(
    credentialHash: string,
    req: ReportRequest,
    now: string,
  ): Promise<AuthenticatedMachine | undefined | 'unknown-patch'> {
    return this.db.tx(async (x) => {
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
        [m.id, s.patchId, s.state, s.reason ?? null, s.transition ? JSON.stringify(s.transition) : null, now],
      );
      await x.run(
        'INSERT INTO reports (machine_id, patch_id, action, state, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
        [m.id, s.patchId, req.action, s.state, s.reason ?? null, now],
      );
      return { id: m.id, tier: m.tier, kernelRelease: m.kernel_release, buildId: m.build_id };
    });
  }

  async machineByCredential(credentialHash: string): Promise<AuthenticatedMachine | undefined> {
    const m = await this.db.get<{ id: string; tier: string; kernel_release: string; build_id: string }>(
      'SELECT id, tier, kernel_release, build_id FROM machines WHERE credential_hash = ?',
      [credentialHash],
    );
    return m && { id: m.id, tier: m.tier, kernelRelease: m.kernel_release, buildId: m.build_id };
  }

  async offers(release: string, buildId: string, tier: string): Promise<PatchRecord[]> {
    const rows = await this.db.all<PatchRow>(
      `SELECT ${PATCH_COLUMNS}, ${tiersAgg(this.kind)} AS tiers FROM patches p
       WHERE p.kernel_release = ? AND p.build_id = ? AND p.revoked_at IS NULL
         AND EXISTS (SELECT 1 FROM patch_tiers t WHERE t.patch_id = p.id AND t.tier = ?)
       ORDER BY p.published_at DESC, p.id DESC`,
      [release, buildId, tier],
    );
    return rows.map((r) => toPatch(r));
  }

  async revokedFor(release: string, buildId: string, tier: string): Promise<PatchRecord[]> {
    const rows = await this.db.all<PatchRow>(
      `SELECT ${PATCH_COLUMNS}, ${tiersAgg(this.kind)} AS tiers FROM patches p
       WHERE p.kernel_release = ? AND p.build_id = ? AND p.revoked_at IS NOT NULL
         AND EXISTS (SELECT 1 FROM patch_tiers t WHERE t.patch_id = p.id AND t.tier = ?)
       ORDER BY p.published_at DESC, p.id DESC`,
      [release, buildId, tier],
    );
    return rows.map((r) => toPatch(r));
  }

  publish(p: PatchRecord, audit: AuditEntry): Promise<'ok' | 'exists'> {
    return this.db.tx(async (x) => {
      const found = await x.get<{ id: string }>('SELECT id FROM patches WHERE id = ?', [p.id]);
      if (found) return 'exists' as const;
      await x.run(
        `INSERT INTO patches (id, name, version, kernel_release, build_id, module_name, manifest, signature, sha256,
           size, cves, description, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          p.id,
          p.name,
          p.version,
          p.kernelRelease,
          p.buildId,
          p.moduleName,
          JSON.stringify(p.manifest),
          p.signature,
          p.sha256,
          p.size,
          JSON.stringify(p.cves),
          p.description,
          p.publishedAt,
        ],
      );
      for (const tier of p.tiers) {
        await x.run('INSERT INTO patch_tiers (patch_id, tier, added_at) VALUES (?, ?, ?)', [
          p.id,
          tier,
          p.publishedAt,
        ]);
      }
      await insertAudit(x, audit);
      return 'ok' as const;
    });
  }

  promote(patchId: string, tier: string, audit: AuditEntry, now: string): Promise<ChangeOutcome> {
    return this.db.tx(async (x) => {
      const p = await x.get<{ revoked_at: string | null }>('SELECT revoked_at FROM patches WHERE id = ?', [
        patchId,
      ]);
      if (!p) return 'unknown' as const;
      if (p.revoked_at) return 'revoked' as const;
      const n = await x.run(
        'INSERT INTO patch_tiers (patch_id, tier, added_at) VALUES (?, ?, ?) ON CONFLICT (patch_id, tier) DO NOTHING',
        [patchId, tier, now],
      );
      if (n === 0) return 'unchanged' as const;
      await insertAudit(x, audit);
      return 'ok' as const;
    });
  }

  revoke(patchId: string, reason: string, audit: AuditEntry, now: string): Promise<ChangeOutcome> {
    return this.db.tx(async (x) => {
      const p = await x.get<{ revoked_at: string | null }>('SELECT revoked_at FROM patches WHERE id = ?', [
        patchId,
      ]);
      if (!p) return 'unknown' as const;
      if (p.revoked_at) return 'unchanged' as const;
      await x.run('UPDATE patches SET revoked_at = ?, revoke_reason = ? WHERE id = ?', [
        now,
        reason,
        patchId,
      ]);
      await insertAudit(x, audit);
      return 'ok' as const;
    });
  }

  setMachineTier(
    machineId: string,
    tier: string,
    audit: AuditEntry,
  ): Promise<'ok' | 'unknown' | 'unchanged'> {
    return this.db.tx(async (x) => {
      const m = await x.get<{ tier: string }>('SELECT tier FROM machines WHERE id = ?', [machineId]);
      if (!m) return 'unknown' as const;
      if (m.tier === tier) return 'unchanged' as const;
      await x.run('UPDATE machines SET tier = ? WHERE id = ?', [tier, machineId]);
      await insertAudit(x, { ...audit, detail: { ...audit.detail, from: m.tier } });
      return 'ok' as const;
    });
  }

  async getPatch(id: string): Promise<PatchRecord | undefined> {
    const r = await this.db.get<PatchRow>(
      `SELECT ${PATCH_COLUMNS}, ${tiersAgg(this.kind)} AS tiers FROM patches p WHERE p.id = ?`,
      [id],
    );
    return r && toPatch(r);
  }

  async listPatches(): Promise<PatchRecord[]> {
    const rows = await this.db.all<PatchRow>(
      `SELECT ${PATCH_COLUMNS}, ${tiersAgg(this.kind)} AS tiers FROM patches p ORDER BY p.published_at DESC, p.id DESC`,
    );
    return rows.map((r) => toPatch(r));
  }

  async listMachines(limit = 1000): Promise<MachineRecord[]> {
    const rows = await this.db.all<MachineRow>(
      `SELECT ${MACHINE_COLUMNS} FROM machines m ORDER BY m.hostname, m.id LIMIT ?`,
      [limit],
    );
    return rows.map(toMachine);
  }

  async getMachine(id: string): Promise<MachineDetail | undefined> {
    const r = await this.db.get<MachineRow>(`SELECT ${MACHINE_COLUMNS} FROM machines m WHERE m.id = ?`, [id]);
    if (!r) return undefined;
    const ps = await this.db.all<{
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
  }

  async listKernels(): Promise<KernelSummary[]> {
    const rows = await this.db.all<{
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
  }

  async listAudit(limit = 200): Promise<AuditEntry[]> {
    const rows = await this.db.all<{
      at: string;
      actor: string;
      action: string;
      target: string;
      detail: string;
    }>('SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?', [limit]);
    return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  async fleet(): Promise<
    Array<{ release: string; buildId: string; tier: string; state: MachineState; machines: number }>
  > {
    const rows = await this.db.all<{
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
  }

  async rollout(): Promise<RolloutRow[]> {
    const count = (state: string) =>
      `(SELECT COUNT(*) FROM machine_patches mp JOIN machines m ON m.id = mp.machine_id
        WHERE mp.patch_id = p.id AND m.tier = pt.tier AND mp.state = '${state}')`;
    const rows = await this.db.all<Record<string, string | number>>(
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
  }

  async failures(limit = 100): Promise<FailureRow[]> {
    const rows = await this.db.all<{
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
       WHERE mp.state = 'failed' OR (mp.state = 'transition' AND mp.transition IS NOT NULL)
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
  }

  async patchMachines(patchId: string, limit = 500): Promise<PatchMachineRow[]> {
    const rows = await this.db.all<{
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
  }

  async counters(): Promise<{
    checkins: number;
    machines: number;
    applyFailures: Array<{ patchId: string; n: number }>;
  }> {
    const c = await this.db.get<{ checkins: number | string | null; machines: number | string }>(
      'SELECT SUM(checkins) AS checkins, COUNT(*) AS machines FROM machines',
    );
    const f = await this.db.all<{ patch_id: string; n: number | string }>(
      `SELECT patch_id, COUNT(*) AS n FROM reports WHERE state = 'failed' GROUP BY patch_id ORDER BY patch_id`,
    );
    return {
      checkins: Number(c?.checkins ?? 0),
      machines: Number(c?.machines ?? 0),
      applyFailures: f.map((r) => ({ patchId: r.patch_id, n: Number(r.n) })),
    };
  }

  async bulkInsertMachines(
    tokenId: string,
    rows: Array<Omit<EnrollInput, 'tokenHash' | 'now'> & { tier: string }>,
    now: string,
  ): Promise<void> {
    const BATCH = 500;
    await this.db.tx(async (x) => {
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
  }

  async putBlob(sha256: string, data: Buffer, now: string): Promise<void> {
    await this.db.run(
      'INSERT INTO artifact_blobs (sha256, size, data, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING',
      [sha256, data.length, data, now],
    );
  }

  async blobSize(sha256: string): Promise<number | undefined> {
    const r = await this.db.get<{ size: number | string }>(
      'SELECT size FROM artifact_blobs WHERE sha256 = ?',
      [sha256],
    );
    return r ? Number(r.size) : undefined;
  }

  async blobData(sha256: string): Promise<Buffer | undefined> {
    const r = await this.db.get<{ data: Buffer }>('SELECT data FROM artifact_blobs WHERE sha256 = ?', [
      sha256,
    ]);
    return r?.data;
  }

  async dump(): Promise<Record<string, unknown[]>> {
    const out: Record<string, unknown[]> = {};
    for (const t of [
      'settings',
      'tokens',
      'machines',
      'patches',
      'patch_tiers',
      'machine_patches',
      'reports',
      'audit',
      'artifact_blobs',
    ]) {
      out[t] = await this.db.all(`SELECT * FROM ${t} ORDER BY 1, 2`);
    }
    return out;
  }
}

/** Open the store named by `database`: a `postgres://` URL, or a SQLite file path. */
export async function openStore(database: string): Promise<Store> {
  const db = /^postgres(ql)?:\/\//.test(database) ? new PostgresDb(database) : new SqliteDb(database);
  const store = new SqlStore(db);
  try {
    await store.init();
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
  return store;
}

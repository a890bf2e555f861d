/*
 * The store: everything the server remembers, one interface composed of one part per concept.
 *
 * `Store` is what the HTTP layer sees. Each concept lives in `store/` as its interface and its SQL
 * implementation over a `Db` (db.ts), written once for both engines: settings (schema version, signing
 * key, admin token), enrollment tokens, check-ins and reports, patches and tiers, machines, fleet
 * views, rollout waves and halts, the audit log, module blobs, and admin access (dashboard sessions, admin token rotation). `openStore` picks the engine — SQLite (one WAL file under the
 * data directory, the default) or PostgreSQL (`postgres://…`, for several server instances behind one
 * load balancer) — and composes the parts. Every change that touches more than one row is one
 * transaction: a publish, a promote, a revoke, an enrollment, a check-in. Secrets arrive here already
 * hashed (credentials.ts); the store never sees them in clear.
 *
 * Tiers: a patch carries a set of tiers. Publishing puts it in one (`canary`), promoting adds another
 * (`stable`); a machine is offered the patch when its own tier is in that set. Revoking a patch takes
 * it out of every offer and puts it in the revoke list of every machine that could have it.
 */
import { type Db, PostgresDb, SqliteDb } from './db.js';
import { addedColumns, postgresSchema, sqliteSchema } from './schema.js';
import { type AdminAccessStore, sqlAdminAccess } from './store/admin-access.js';
import { type AuditStore, sqlAudit } from './store/audit.js';
import { type BlobStore, sqlBlobs } from './store/blobs.js';
import { type CheckinStore, sqlCheckins } from './store/checkins.js';
import { type EnrollmentStore, sqlEnrollment } from './store/enrollment.js';
import { type FleetViewStore, sqlFleetViews } from './store/fleet-views.js';
import { type MachineStore, sqlMachines } from './store/machines.js';
import { type PatchStore, sqlPatches } from './store/patches.js';
import { type RolloutStore, sqlRollouts } from './store/rollouts.js';
import { type SettingsStore, sqlSettings } from './store/settings.js';

export type { AuditEntry } from './store/audit.js';
export type { AuthenticatedMachine } from './store/checkins.js';
export type { EnrollInput, EnrollOutcome, TokenRecord } from './store/enrollment.js';
export type { FailureRow, FleetRow, PatchMachineRow, RolloutRow } from './store/fleet-views.js';
export type {
  KernelSummary,
  MachineDetail,
  MachinePatch,
  MachineRecord,
  MachineState,
} from './store/machines.js';
export type { ChangeOutcome, OfferRecord, PatchRecord } from './store/patches.js';
export type { HaltOutcome, TierRollout, WavePlan, WaveStatus } from './store/rollouts.js';

export interface Store
  extends SettingsStore,
    EnrollmentStore,
    CheckinStore,
    PatchStore,
    RolloutStore,
    MachineStore,
    FleetViewStore,
    AuditStore,
    BlobStore,
    AdminAccessStore {
  readonly kind: 'sqlite' | 'postgres';
  init(): Promise<void>;
  close(): Promise<void>;
  /** Every row of every table, for tests proving that bad input changed nothing. */
  dump(): Promise<Record<string, unknown[]>>;
}

const TABLES = [
  'settings',
  'tokens',
  'machines',
  'patches',
  'patch_tiers',
  'machine_patches',
  'reports',
  'audit',
  'sessions',
  'artifact_blobs',
];

/** The store over an open connection (not yet initialised: call `init`). */
export function sqlStore(db: Db): Store {
  const settings = sqlSettings(db);
  return {
    kind: db.kind,
    async init() {
      await db.exec(db.kind === 'sqlite' ? sqliteSchema : postgresSchema);
      for (const c of addedColumns) {
        const present = await db.all(`SELECT ${c.column} FROM ${c.table} LIMIT 0`).then(
          () => true,
          () => false,
        );
        // PostgreSQL: several instances may start at once
        if (!present)
          await db.exec(
            db.kind === 'postgres' ? c.ddl.replace('ADD COLUMN', 'ADD COLUMN IF NOT EXISTS') : c.ddl,
          );
      }
      await settings.setSettingIfAbsent('schema_version', '1');
    },
    close: () => db.close(),
    async dump() {
      const out: Record<string, unknown[]> = {};
      for (const t of TABLES) out[t] = await db.all(`SELECT * FROM ${t} ORDER BY 1, 2`);
      return out;
    },
    ...settings,
    ...sqlEnrollment(db),
    ...sqlCheckins(db),
    ...sqlPatches(db),
    ...sqlRollouts(db),
    ...sqlMachines(db),
    ...sqlFleetViews(db),
    ...sqlAudit(db),
    ...sqlBlobs(db),
    ...sqlAdminAccess(db),
  };
}

/** Open the store named by `database`: a `postgres://` URL, or a SQLite file path. */
export async function openStore(database: string): Promise<Store> {
  const db = /^postgres(ql)?:\/\//.test(database) ? new PostgresDb(database) : new SqliteDb(database);
  const store = sqlStore(db);
  try {
    await store.init();
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
  return store;
}

/*
 * The database schema, the same tables on SQLite and PostgreSQL.
 *
 * Times are ISO-8601 text (sortable, identical on both engines); JSON documents (manifests, CVE lists,
 * transitions) are text. Secrets never appear: tokens and machine credentials are stored as sha256
 * hashes, looked up through a unique index. `schema_version` in `settings` lets later versions migrate.
 * Dashboard sessions are rows too (`sessions`, by the sha256 of their random id), so every instance on
 * one PostgreSQL accepts a session another instance opened, and revoking one is a DELETE.
 *
 * `artifact_blobs` holds every uploaded module's bytes (a few hundred KB each): the database is where
 * instances sharing PostgreSQL find a module another instance received; `<data>/artifacts` is only a
 * local cache of it (see artifacts.ts).
 */
import { ROLLOUT_COLUMNS } from './store/rollouts.js';

const common = (autoId: string, blob: string) => `
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '',
  max_uses INTEGER,
  uses INTEGER NOT NULL DEFAULT 0,
  expires_at TEXT,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS machines (
  id TEXT PRIMARY KEY,
  credential_hash TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL,
  hostname TEXT NOT NULL,
  kernel_release TEXT NOT NULL,
  build_id TEXT NOT NULL,
  agent_version TEXT NOT NULL,
  token_id TEXT NOT NULL REFERENCES tokens(id),
  enrolled_at TEXT NOT NULL,
  last_checkin_at TEXT,
  checkins INTEGER NOT NULL DEFAULT 0,
  disabled_at TEXT
);
CREATE INDEX IF NOT EXISTS machines_kernel ON machines (kernel_release, build_id, tier);
CREATE TABLE IF NOT EXISTS patches (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  kernel_release TEXT NOT NULL,
  build_id TEXT NOT NULL,
  module_name TEXT NOT NULL,
  manifest TEXT NOT NULL,
  signature TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  cves TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  published_at TEXT NOT NULL,
  revoked_at TEXT,
  revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS patches_kernel ON patches (kernel_release, build_id);
CREATE TABLE IF NOT EXISTS patch_tiers (
  patch_id TEXT NOT NULL REFERENCES patches(id),
  tier TEXT NOT NULL,
  added_at TEXT NOT NULL,
  PRIMARY KEY (patch_id, tier)
);
CREATE TABLE IF NOT EXISTS machine_patches (
  machine_id TEXT NOT NULL REFERENCES machines(id),
  patch_id TEXT NOT NULL REFERENCES patches(id),
  state TEXT NOT NULL,
  reason TEXT,
  transition TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (machine_id, patch_id)
);
CREATE INDEX IF NOT EXISTS machine_patches_patch ON machine_patches (patch_id, state);
CREATE TABLE IF NOT EXISTS reports (
  id ${autoId},
  machine_id TEXT NOT NULL REFERENCES machines(id),
  patch_id TEXT NOT NULL REFERENCES patches(id),
  action TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_patch ON reports (patch_id, state);
CREATE TABLE IF NOT EXISTS artifact_blobs (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  data ${blob} NOT NULL,
  stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT PRIMARY KEY,
  actor TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
  id ${autoId},
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL
);
`;

/**
 * Columns added after a table first shipped: `CREATE TABLE IF NOT EXISTS` leaves an older table as it
 * was, so each is added when a probe of it fails (both engines accept this `ALTER TABLE`).
 */
export const addedColumns: Array<{ table: string; column: string; ddl: string }> = [
  { table: 'machines', column: 'disabled_at', ddl: 'ALTER TABLE machines ADD COLUMN disabled_at TEXT' },
  // phased rollouts and halts (store/rollouts.ts)
  ...ROLLOUT_COLUMNS.map((c) => ({
    table: 'patch_tiers',
    column: c.split(' ')[0] ?? c,
    ddl: `ALTER TABLE patch_tiers ADD COLUMN ${c}`,
  })),
  // the kernel log lines a `bad` report carries
  { table: 'reports', column: 'excerpt', ddl: 'ALTER TABLE reports ADD COLUMN excerpt TEXT' },
];

export const sqliteSchema = common('INTEGER PRIMARY KEY AUTOINCREMENT', 'BLOB');
export const postgresSchema = common('BIGSERIAL PRIMARY KEY', 'BYTEA');

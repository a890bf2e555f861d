/*
 * The server the refusal tests (bad-input.test.ts, hostile-input.test.ts) send their requests to, on
 * each database engine: SQLite (the server's own file) and a throwaway PostgreSQL cluster (skipped,
 * with the reason, where PostgreSQL is not installed). It has one machine enrolled in canary and one
 * patch (`cmdline`) published to it, so every route has something real to refuse access to.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { AdminClient } from '../admin-client.js';
import type { Limits } from '../app.js';
import { type RunningServer, startServer } from '../server.js';
import { FakeMachine, writePatch } from './fleet-fixture.js';
import { findPostgres, type PostgresCluster, startPostgres } from './postgres-fixture.js';

/** The database a suite runs on: undefined for SQLite, a PostgreSQL URL, or why the suite skips. */
export type EngineDatabase = () => Promise<string | undefined | { skip: string }>;

/** Define `suite` on SQLite and on PostgreSQL (a database named `dbName`); the cluster stops after. */
export function onEachEngine(
  dbName: string,
  suite: (engine: string, database: EngineDatabase) => void,
): void {
  let cluster: PostgresCluster | undefined;
  suite('SQLite', async () => undefined);
  suite('PostgreSQL', async () => {
    if (!findPostgres())
      return { skip: 'PostgreSQL is not installed (apt-get install postgresql); CI installs it' };
    cluster = await startPostgres();
    return cluster.createDatabase(dbName);
  });
  after(() => cluster?.stop());
}

export interface RefusalServer {
  /** scratch directory: the server's data is in `data/` */
  dir: string;
  server: RunningServer;
  admin: AdminClient;
  /** enrolled in canary, not checked in yet */
  machine: FakeMachine;
  /** the `cmdline` patch, published to canary */
  patchId: string;
}

/** Start the server on `db` with `limits`; the caller closes it and removes `dir`. */
export async function startRefusalServer(
  name: string,
  db: string | undefined,
  limits: Partial<Limits>,
): Promise<RefusalServer> {
  const dir = await mkdtemp(join(tmpdir(), `suture-${name}-`));
  const server = await startServer({ dataDir: join(dir, 'data'), ...(db ? { database: db } : {}), limits });
  const admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const machine = new FakeMachine(server.url, 'm1');
  await machine.enroll((await admin.createToken({ tier: 'canary' })).token);
  const w = await writePatch(dir, { name: 'cmdline' });
  const patchId = (await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' })).id;
  return { dir, server, admin, machine, patchId };
}

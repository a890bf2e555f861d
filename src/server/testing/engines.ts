/*
 * The database engines a server test runs on: SQLite (the test's own file) and a throwaway
 * PostgreSQL cluster (postgres-fixture.ts), skipped with the reason where PostgreSQL is not installed.
 * A test file defines its suite once and `onEachEngine` defines it for each engine; the cluster is
 * started the first time the PostgreSQL suite asks for a database and stopped after the file.
 * `openEngineStore` opens a store suite's store on the database it was given.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { openStore, type Store } from '../store.js';
import { findPostgres, type PostgresCluster, startPostgres } from './postgres-fixture.js';

/** Why a PostgreSQL suite skips on a machine without it. */
export const NO_POSTGRES = 'PostgreSQL is not installed (apt-get install postgresql); CI installs it';

/**
 * The database a suite runs on: undefined for SQLite (the suite opens a file of its own), a fresh
 * PostgreSQL database's URL (named `name`, the suite's name when omitted), or why the suite skips.
 */
export type EngineDatabase = (name?: string) => Promise<string | undefined | { skip: string }>;

/** Define `suite` on SQLite and on PostgreSQL (databases named `dbName` unless asked otherwise). */
export function onEachEngine(
  dbName: string,
  suite: (engine: string, database: EngineDatabase) => void,
): void {
  let cluster: Promise<PostgresCluster> | undefined;
  suite('SQLite', async () => undefined);
  suite('PostgreSQL', async (name = dbName) => {
    if (!findPostgres()) return { skip: NO_POSTGRES };
    cluster ??= startPostgres();
    return (await cluster).createDatabase(name);
  });
  after(async () => (await cluster?.catch(() => undefined))?.stop());
}

/** A store opened on an engine's database; `close` closes it and removes its SQLite directory. */
export interface EngineStore {
  store: Store;
  close(): Promise<void>;
}

/** Open the store on `db` (a PostgreSQL URL), or on SQLite in a fresh temp dir named after `name`. */
export async function openEngineStore(db: string | undefined, name: string): Promise<EngineStore> {
  if (db) {
    const store = await openStore(db);
    return { store, close: () => store.close() };
  }
  const dir = await mkdtemp(join(tmpdir(), `suture-${name}-`));
  const store = await openStore(join(dir, 'suture.db'));
  return {
    store,
    async close() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

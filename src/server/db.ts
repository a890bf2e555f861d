/*
 * The SQL connection under a store: one tiny interface, two drivers.
 *
 * Store code is written once in the SQL both engines share (`?` placeholders, `ON CONFLICT … DO UPDATE`,
 * `RETURNING`); a driver adapts it. SQLite (better-sqlite3) is synchronous and single-connection, so
 * its transactions are serialised with a queue: while one transaction is open, every other statement
 * waits for it, so nothing from another request can slip into (or be rolled back with) it. PostgreSQL
 * (pg) uses a pool; a transaction holds one client from BEGIN to COMMIT. Statements are prepared once
 * and reused on both (SQLite statement cache, PostgreSQL named statements).
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import Database from 'better-sqlite3';
import pg from 'pg';

/** a statement parameter; arrays only for PostgreSQL (`unnest(?::text[])`); a Buffer is a BLOB/BYTEA */
export type Param = string | number | null | readonly (string | null)[] | Buffer;

/** Statements available inside and outside a transaction. */
export interface Sql {
  all<T>(sql: string, params?: readonly Param[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly Param[]): Promise<T | undefined>;
  /** returns the number of rows changed */
  run(sql: string, params?: readonly Param[]): Promise<number>;
}

export interface Db extends Sql {
  readonly kind: 'sqlite' | 'postgres';
  /** Run `fn` in one transaction: all of it commits, or (on throw) none of it. */
  tx<T>(fn: (t: Sql) => Promise<T>): Promise<T>;
  /** Run DDL (several statements, no parameters). */
  exec(ddl: string): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------

export class SqliteDb implements Db {
  readonly kind = 'sqlite' as const;
  readonly raw: BetterSqlite3.Database;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  /** resolves when the open transaction (if any) is over */
  private queue: Promise<void> = Promise.resolve();
  private inTx = false;

  private checkpointer?: Worker;

  constructor(file: string) {
    this.raw = new Database(file);
    this.raw.pragma('journal_mode = WAL');
    this.raw.pragma('synchronous = NORMAL');
    this.raw.pragma('foreign_keys = ON');
    this.raw.pragma('busy_timeout = 5000');
    if (file !== ':memory:') {
      // checkpoints run in a worker thread (wal-checkpoint.ts), not in the commit of a request
      this.raw.pragma('wal_autocheckpoint = 0');
      const w = new Worker(new URL('./wal-checkpoint.js', import.meta.url), {
        workerData: { file, intervalMs: 500 },
        execArgv: [],
      });
      // if the worker cannot run, fall back to SQLite's own checkpoints in the commit path
      w.on('error', () => {
        if (this.raw.open) this.raw.pragma('wal_autocheckpoint = 1000');
        this.checkpointer = undefined;
      });
      w.unref();
      this.checkpointer = w;
    }
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private readonly direct: Sql = {
    all: async <T>(sql: string, params: readonly Param[] = []) => this.stmt(sql).all(...params) as T[],
    get: async <T>(sql: string, params: readonly Param[] = []) =>
      this.stmt(sql).get(...params) as T | undefined,
    run: async (sql: string, params: readonly Param[] = []) => this.stmt(sql).run(...params).changes,
  };

  async all<T>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    while (this.inTx) await this.queue;
    return this.stmt(sql).all(...params) as T[];
  }
  async get<T>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    while (this.inTx) await this.queue;
    return this.stmt(sql).get(...params) as T | undefined;
  }
  async run(sql: string, params: readonly Param[] = []): Promise<number> {
    while (this.inTx) await this.queue;
    return this.stmt(sql).run(...params).changes;
  }

  async tx<T>(fn: (t: Sql) => Promise<T>): Promise<T> {
    while (this.inTx) await this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((r) => {
      release = r;
    });
    this.inTx = true;
    this.stmt('BEGIN IMMEDIATE').run();
    try {
      const out = await fn(this.direct);
      this.stmt('COMMIT').run();
      return out;
    } catch (e) {
      if (this.raw.inTransaction) this.stmt('ROLLBACK').run();
      throw e;
    } finally {
      this.inTx = false;
      release();
    }
  }

  async exec(ddl: string): Promise<void> {
    this.raw.exec(ddl);
  }

  async close(): Promise<void> {
    const w = this.checkpointer;
    if (w && w.threadId >= 0) {
      const exited = new Promise((r) => w.once('exit', r));
      w.ref(); // keep the event loop alive until the worker has closed its connection
      w.postMessage('stop');
      await exited;
    }
    this.statements.clear();
    this.raw.close();
  }
}

// ---------------------------------------------------------------------------------------------------

const pgText = new Map<string, { name: string; text: string }>();

/** `?` placeholders → `$1…`, and a stable statement name so pg prepares it once per connection. */
function pgStatement(sql: string): { name: string; text: string } {
  let s = pgText.get(sql);
  if (!s) {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    s = { name: `s${createHash('sha1').update(text).digest('hex').slice(0, 16)}`, text };
    pgText.set(sql, s);
  }
  return s;
}

type Queryable = pg.Pool | pg.PoolClient;

function pgSql(q: Queryable): Sql {
  return {
    all: async <T>(sql: string, params: readonly Param[] = []) =>
      (await q.query({ ...pgStatement(sql), values: [...params] })).rows as T[],
    get: async <T>(sql: string, params: readonly Param[] = []) =>
      (await q.query({ ...pgStatement(sql), values: [...params] })).rows[0] as T | undefined,
    run: async (sql: string, params: readonly Param[] = []) =>
      (await q.query({ ...pgStatement(sql), values: [...params] })).rowCount ?? 0,
  };
}

export class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly sql: Sql;

  constructor(url: string, poolSize = 20) {
    this.pool = new pg.Pool({ connectionString: url, max: poolSize });
    // an idle client losing its connection must not crash the server
    this.pool.on('error', () => {});
    this.sql = pgSql(this.pool);
  }

  all<T>(sql: string, params?: readonly Param[]): Promise<T[]> {
    return this.sql.all<T>(sql, params);
  }
  get<T>(sql: string, params?: readonly Param[]): Promise<T | undefined> {
    return this.sql.get<T>(sql, params);
  }
  run(sql: string, params?: readonly Param[]): Promise<number> {
    return this.sql.run(sql, params);
  }

  async tx<T>(fn: (t: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      try {
        const out = await fn(pgSql(client));
        await client.query('COMMIT');
        return out;
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
    } finally {
      client.release();
    }
  }

  async exec(ddl: string): Promise<void> {
    await this.pool.query(ddl);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/*
 * Several server processes on one host and one PostgreSQL database: `suture server --workers N`.
 *
 * One Node process answers check-ins on one core; a host with more cores runs N of them. This is the
 * scale-out of scale-out.test.ts (instances on one database, nothing shared but the database and the
 * data directory) inside one host: the primary forks N workers (node:cluster), which share the listening
 * socket (the primary hands each connection to a worker in turn), and each worker is a whole server
 * (worker-entry.ts → startServer). What one instance caches (offers, the signing key) it already
 * re-reads from the database every two seconds, so workers agree as instances do.
 *
 * - The first worker starts alone: it creates the schema, the signing key and the admin token of a first
 *   start; the others start once it listens, and find them.
 * - A worker that fails to start fails the whole start, with its own diagnostic.
 * - A worker that dies later is replaced (at most once a second); the others go on serving meanwhile.
 * - `close()` (SIGINT/SIGTERM) closes every worker (each finishes its requests) and waits for them.
 * - Request budgets (limits.ts) are counted by each worker for the connections it serves.
 *
 * SQLite has one writer: N processes would queue on its lock, so `--workers` needs PostgreSQL.
 */
import cluster, { type Worker } from 'node:cluster';
import { type Diagnostic, SutureError } from '../diagnostic.js';
import type { ServerOptions } from './server.js';

/** what the primary and a worker say to each other over the cluster's IPC channel */
export type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'start'; options: ServerOptions }
  | { kind: 'listening'; url: string; publicKey: string; custody: string; createdAdminToken?: string }
  | { kind: 'failed'; diagnostic: Diagnostic }
  | { kind: 'close' };

export interface WorkerPool {
  url: string;
  publicKey: string;
  /** where the signing key is kept (signing.ts `custody`) */
  custody: string;
  createdAdminToken?: string;
  /** the workers' process ids, in start order (a replaced worker's pid is swapped in) */
  readonly pids: number[];
  close(): Promise<void>;
}

/** the most workers one host may ask for */
export const MAX_WORKERS = 64;

export function checkWorkers(workers: number, database: string | undefined): void {
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new SutureError({
      code: 'SERVER-WORKERS',
      message: `--workers must be an integer from 1 to ${MAX_WORKERS}, got ${workers}`,
      hint: 'one worker per core the server may use, e.g. --workers "$(nproc)"',
    });
  }
  if (workers > 1 && !database?.startsWith('postgres')) {
    throw new SutureError({
      code: 'SERVER-WORKERS',
      message: `--workers ${workers} needs PostgreSQL (--database postgres://…)`,
      why: 'SQLite has one writer: several processes on one SQLite file would queue on its lock',
      hint: 'run one worker on SQLite, or move the server to PostgreSQL to run several',
    });
  }
}

/** this process's Node flags without code to evaluate (`node -e …` would run again in each worker) */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (['-e', '--eval', '-p', '--print'].includes(a)) i++;
    else if (!/^(--eval|--print|--input-type)=/.test(a) && a !== '--input-type') out.push(a);
  }
  return out;
}

function fork(entry: URL): Worker {
  cluster.setupPrimary({ exec: entry.pathname, execArgv: workerExecArgv(), args: [], silent: false });
  return cluster.fork();
}

/** Start one worker and wait for it to listen (or to fail, or to die). */
function startOne(entry: URL, options: ServerOptions): Promise<{ worker: Worker; up: WorkerMessage }> {
  const worker = fork(entry);
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) =>
      reject(
        new SutureError({
          code: 'SERVER-WORKERS',
          message: `a server worker exited while starting (${signal ?? `status ${code}`})`,
          hint: 'run `suture server` without --workers to see its error',
        }),
      );
    worker.once('exit', onExit);
    worker.on('message', (m: WorkerMessage) => {
      // a message sent before the worker listens for it would be lost: it says when it does
      if (m.kind === 'ready') worker.send({ kind: 'start', options } satisfies WorkerMessage);
      else if (m.kind === 'listening') {
        worker.off('exit', onExit);
        resolve({ worker, up: m });
      } else if (m.kind === 'failed') {
        worker.off('exit', onExit);
        reject(new SutureError(m.diagnostic));
      }
    });
  });
}

function closeWorker(w: Worker): Promise<void> {
  if (w.isDead()) return Promise.resolve();
  return new Promise((resolve) => {
    w.once('exit', () => resolve());
    w.send({ kind: 'close' } satisfies WorkerMessage);
  });
}

/**
 * Start `workers` server processes on `options` (PostgreSQL), all on one port (with port 0, the one the
 * first worker got).
 */
export async function startWorkers(options: ServerOptions, workers: number): Promise<WorkerPool> {
  checkWorkers(workers, options.database);
  const entry = new URL('./worker-entry.js', import.meta.url);
  const first = await startOne(entry, options);
  const up = first.up as Extract<WorkerMessage, { kind: 'listening' }>;
  // the same options for every worker: the primary keys the shared socket by address and port as
  // asked, so port 0 is one socket (the first worker's port), where asking for that port binds again
  const live: Worker[] = [first.worker];
  let closing = false;
  try {
    const rest = await Promise.all(Array.from({ length: workers - 1 }, () => startOne(entry, options)));
    live.push(...rest.map((r) => r.worker));
  } catch (e) {
    closing = true;
    await Promise.all(live.map(closeWorker));
    throw e;
  }
  let lastRestart = 0;
  const watch = (w: Worker) =>
    w.once('exit', (code, signal) => {
      if (closing) return;
      const i = live.indexOf(w);
      process.stderr.write(
        `suture server: worker ${w.process.pid} exited (${signal ?? `status ${code}`}); starting another\n`,
      );
      const wait = Math.max(0, lastRestart + 1000 - Date.now());
      lastRestart = Date.now() + wait;
      setTimeout(() => {
        if (closing) return;
        startOne(entry, options).then(
          ({ worker }) => {
            live[i] = worker;
            watch(worker);
          },
          (e: unknown) =>
            process.stderr.write(`suture server: a replacement worker failed: ${(e as Error).message}\n`),
        );
      }, wait);
    });
  for (const w of live) watch(w);
  return {
    url: up.url,
    publicKey: up.publicKey,
    custody: up.custody,
    ...(up.createdAdminToken ? { createdAdminToken: up.createdAdminToken } : {}),
    get pids() {
      return live.map((w) => w.process.pid ?? 0);
    },
    async close() {
      closing = true;
      await Promise.all(live.map(closeWorker));
    },
  };
}

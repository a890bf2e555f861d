/*
 * WAL checkpoints off the request path.
 *
 * In WAL mode SQLite appends every commit to the write-ahead log and, by default, the commit that
 * crosses 1000 pages copies the log back into the database file — synchronously, on the event loop
 * that is serving check-ins: a 10–100 ms stall every thousand check-ins, which is the p99. The server's
 * connection disables that (wal_autocheckpoint = 0) and this worker thread, with its own connection,
 * runs PASSIVE checkpoints (never blocking readers or the writer) twice a second instead.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

if (!isMainThread && parentPort) {
  const { file, intervalMs } = workerData as { file: string; intervalMs: number };
  const db = new Database(file);
  db.pragma('busy_timeout = 1000');
  const timer = setInterval(() => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // busy: the next tick tries again
    }
  }, intervalMs);
  parentPort.on('message', (m) => {
    if (m === 'stop') {
      clearInterval(timer);
      try {
        db.pragma('wal_checkpoint(PASSIVE)');
      } catch {}
      db.close();
      parentPort?.close();
    }
  });
}

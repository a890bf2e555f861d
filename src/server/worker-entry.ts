/*
 * A worker process of `suture server --workers N` (workers.ts): waits for its options from the primary,
 * starts a whole server on them, says where it listens (or why it could not start), and closes when told
 * to (finishing the requests it has) or when the primary goes away.
 */
import { toDiagnostic } from '../diagnostic.js';
import { type RunningServer, startServer } from './server.js';
import type { WorkerMessage } from './workers.js';

let server: RunningServer | undefined;
const say = (m: WorkerMessage) => process.send?.(m);

async function stop(): Promise<void> {
  await server?.close().catch(() => {});
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
}

process.on('message', (m: WorkerMessage) => {
  if (m.kind === 'close') void stop();
  if (m.kind !== 'start') return;
  startServer(m.options).then(
    (s) => {
      server = s;
      say({
        kind: 'listening',
        url: s.url,
        publicKey: s.publicKey,
        custody: s.signer.custody,
        ...(s.createdAdminToken ? { createdAdminToken: s.createdAdminToken } : {}),
      });
    },
    (e: unknown) => {
      say({ kind: 'failed', diagnostic: toDiagnostic(e) });
      process.exitCode = 1;
      process.disconnect?.();
    },
  );
});
// the primary's SIGINT/SIGTERM reach the workers too: the primary closes them, so they wait for that
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('disconnect', () => void stop());
say({ kind: 'ready' });

/*
 * The server the refusal tests (bad-input.test.ts, hostile-input.test.ts) send their requests to, on
 * each database engine (engines.ts: SQLite, the server's own file, or a database of a throwaway
 * PostgreSQL cluster). It has one machine enrolled in canary and one patch (`cmdline`) published to
 * it, so every route has something real to refuse access to.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminClient } from '../admin-client.js';
import type { Limits } from '../app.js';
import { type RunningServer, startServer } from '../server.js';
import { FakeMachine, writePatch } from './fleet-fixture.js';

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

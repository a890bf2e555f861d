/*
 * The server side of the agent's tests, behind one small interface: make tokens, publish, promote,
 * revoke, and read back what a machine reported. `startFleetBackend` runs the real Suture server
 * (src/server/, SQLite in a temporary --data directory) in-process on 127.0.0.1 and drives it through
 * its admin HTTP API, exactly as `suture publish/promote/revoke/token create` do. `offerFor` obtains
 * a real, correctly signed offer for any kernel by enrolling a throwaway machine that claims that
 * kernel — how the refusal tests get a patch for another build id that the server would never offer
 * to the machine under test.
 * Test support only.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../manifest/manifest.js';
import type { KernelIdentity, OfferedPatch, PatchStatus } from '../../manifest/protocol.js';
import type { WavePlanRequest } from '../../server/admin-protocol.js';
import { startServer } from '../../server/server.js';
import { ServerClient } from '../server-client.js';

export interface FleetBackend {
  url: string;
  createToken(tier: string): Promise<string>;
  /** upload and publish; `rollout` rolls the tier out in waves (admin-protocol.ts's wave plan) */
  publish(module: string, manifest: Manifest, tier: string, rollout?: WavePlanRequest): Promise<string>;
  promote(patchId: string, tier: string): Promise<void>;
  revoke(patchId: string): Promise<void>;
  /** the patch state the server holds for a machine (from its check-ins and reports) */
  machineState(machineId: string, patchId: string): Promise<string | undefined>;
  machineReport(machineId: string, patchId: string): Promise<PatchStatus | undefined>;
  offerFor(patchId: string, tier: string, kernel: KernelIdentity): Promise<OfferedPatch>;
  stop(): Promise<void>;
}

export async function offerVia(
  url: string,
  token: string,
  patchId: string,
  kernel: KernelIdentity,
): Promise<OfferedPatch> {
  const e = await new ServerClient(url).enroll({
    token,
    hostname: 'impostor',
    kernel,
    agentVersion: '0.1.0',
  });
  const c = await new ServerClient(url, e.credential).checkin({
    kernel,
    hostname: 'impostor',
    agentVersion: '0.1.0',
    patches: [],
  });
  const o = c.answer.offered.find((x) => x.patchId === patchId);
  if (!o) throw new Error(`the server does not offer ${patchId} to ${kernel.release}/${kernel.buildId}`);
  return o;
}

export interface ServerBackend extends FleetBackend {
  adminToken: string;
  /** the server's current signing key (for tests that play a compromised server) */
  signingKey(): KeyObject;
  port: number;
  dataDir: string;
  admin<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** run the rollout gate once as if at `now` (what the server's own timer does every 5 s) */
  advanceRollouts(now: string): Promise<Array<{ patchId: string; tier: string; wave: number }>>;
}

interface MachineDetailJson {
  patches: (PatchStatus & { revoked: boolean })[];
}

/** The real server on 127.0.0.1 (`host` and `port` to choose; 0 = any free port). */
export async function startFleetBackend(
  o: { host?: string; port?: number; checkinIntervalSeconds?: number } = {},
): Promise<ServerBackend> {
  const dataDir = mkdtempSync(join(tmpdir(), 'suture-server-'));
  const adminToken = `admin-${createHash('sha256').update(dataDir).digest('hex').slice(0, 32)}`;
  const server = await startServer({
    dataDir,
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 0,
    adminToken,
    checkinIntervalSeconds: o.checkinIntervalSeconds ?? 1,
    limits: { checkinPerMinute: 100_000, enrollPerMinute: 100_000, adminPerMinute: 100_000 },
    offerTtlMs: 0,
  });
  const url = server.url.replace(/\/+$/, '');
  async function admin<T>(method: string, path: string, body?: unknown): Promise<T> {
    const raw = body instanceof Buffer;
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminToken}`,
        ...(body === undefined
          ? {}
          : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }
  const detail = (m: string) => admin<MachineDetailJson>('GET', `/admin/v1/machines/${m}`);
  return {
    url,
    adminToken,
    signingKey: () => server.signer.keyPair.privateKey,
    port: Number(new URL(url).port),
    dataDir,
    admin,
    createToken: async (tier) => (await admin<{ token: string }>('POST', '/admin/v1/tokens', { tier })).token,
    advanceRollouts: (now) => server.store.advanceRollouts(now),
    publish: async (module, manifest, tier, rollout) => {
      const bytes = readFileSync(module);
      const sha = createHash('sha256').update(bytes).digest('hex');
      await admin('PUT', `/admin/v1/artifacts/${sha}`, bytes);
      return (
        await admin<{ id: string }>('POST', '/admin/v1/patches', {
          manifest,
          tier,
          ...(rollout ? { rollout } : {}),
        })
      ).id;
    },
    promote: async (id, tier) => {
      await admin('POST', `/admin/v1/patches/${id}/promote`, { tier });
    },
    revoke: async (id) => {
      await admin('POST', `/admin/v1/patches/${id}/revoke`, { reason: 'test' });
    },
    machineState: async (m, id) => (await detail(m)).patches.find((p) => p.patchId === id)?.state,
    machineReport: async (m, id) => (await detail(m)).patches.find((p) => p.patchId === id),
    offerFor: async (id, tier, kernel) =>
      offerVia(url, (await admin<{ token: string }>('POST', '/admin/v1/tokens', { tier })).token, id, kernel),
    stop: async () => {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

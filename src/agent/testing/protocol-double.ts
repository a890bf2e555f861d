/*
 * A stand-in for the Suture server that speaks exactly the /v1 machine protocol (manifest/protocol.ts),
 * for developing the agent before src/server/ exists and for wire-level tests that need to control
 * every answer. It signs with a real ed25519 key (manifest/signature.ts), keeps everything in memory,
 * and has no admin API, store or dashboard: tests that are about the server use the real one.
 * Test support only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalJson, type Manifest } from '../../manifest/manifest.js';
import {
  type CheckinResponse,
  checkinRequestSchema,
  enrollRequestSchema,
  type KernelIdentity,
  type OfferedPatch,
  type PatchStatus,
  reportRequestSchema,
} from '../../manifest/protocol.js';
import { generateSigningKey, publicKeyToBase64, signManifest } from '../../manifest/signature.js';

interface Published {
  patchId: string;
  manifest: Manifest;
  signature: string;
  module: Buffer;
  tiers: Set<string>;
  revoked: boolean;
  publishedAt: string;
}

interface Machine {
  id: string;
  tier: string;
  kernel: KernelIdentity;
  patches: Map<string, PatchStatus>;
  reports: { action: string; status: PatchStatus }[];
  checkins: number;
}

export class ProtocolDouble {
  private readonly key = generateSigningKey();
  readonly publicKey = publicKeyToBase64(this.key.publicKey);
  readonly tokens = new Map<string, string>();
  readonly machines = new Map<string, Machine>();
  private readonly credentials = new Map<string, string>();
  readonly patches: Published[] = [];
  intervalSeconds = 1;
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  createToken(tier: string): string {
    const t = randomBytes(16).toString('hex');
    this.tokens.set(t, tier);
    return t;
  }

  publish(manifest: Manifest, module: Buffer, tier: string): string {
    const patchId = createHash('sha256').update(canonicalJson(manifest)).digest('hex').slice(0, 16);
    this.patches.unshift({
      patchId,
      manifest,
      signature: signManifest(manifest, this.key.privateKey),
      module,
      tiers: new Set([tier]),
      revoked: false,
      publishedAt: new Date().toISOString(),
    });
    return patchId;
  }

  promote(patchId: string, tier: string): void {
    this.find(patchId).tiers.add(tier);
  }

  revoke(patchId: string): void {
    this.find(patchId).revoked = true;
  }

  private find(patchId: string): Published {
    const p = this.patches.find((x) => x.patchId === patchId);
    if (!p) throw new Error(`no patch ${patchId}`);
    return p;
  }

  async listen(host = '127.0.0.1', port = 0): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e) => this.error(res, 500, 'INTERNAL', String(e)));
    });
    await new Promise<void>((resolve) => server.listen(port || this.port, host, () => resolve()));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private error(res: ServerResponse, status: number, code: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code, message } }));
  }

  private json(res: ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private machineOf(req: IncomingMessage): Machine | undefined {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const id = m ? this.credentials.get(m[1] as string) : undefined;
    return id ? this.machines.get(id) : undefined;
  }

  private offersFor(m: Machine): OfferedPatch[] {
    return this.patches
      .filter(
        (p) =>
          !p.revoked &&
          p.tiers.has(m.tier) &&
          p.manifest.kernel.release === m.kernel.release &&
          p.manifest.kernel.buildId === m.kernel.buildId,
      )
      .map((p) => ({
        patchId: p.patchId,
        manifest: p.manifest,
        signature: p.signature,
        sha256: p.manifest.module.sha256,
        size: p.module.length,
        url: `/v1/patches/${p.patchId}/module`,
        publishedAt: p.publishedAt,
      }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    const path = req.url ?? '';
    if (req.method === 'POST' && path === '/v1/enroll') {
      const r = enrollRequestSchema.safeParse(body);
      if (!r.success) return this.error(res, 400, 'REQUEST-INVALID', r.error.message);
      const tier = this.tokens.get(r.data.token);
      if (!tier) return this.error(res, 401, 'TOKEN-UNKNOWN', 'unknown enrollment token');
      const id = `m-${randomBytes(8).toString('hex')}`;
      const credential = randomBytes(24).toString('hex');
      this.credentials.set(credential, id);
      this.machines.set(id, {
        id,
        tier,
        kernel: r.data.kernel,
        patches: new Map(),
        reports: [],
        checkins: 0,
      });
      return this.json(res, {
        machineId: id,
        credential,
        serverPublicKey: this.publicKey,
        tier,
        checkinIntervalSeconds: this.intervalSeconds,
      });
    }
    const m = this.machineOf(req);
    if (!m) return this.error(res, 401, 'AUTH-INVALID', 'unknown credential');
    if (req.method === 'POST' && path === '/v1/checkin') {
      const r = checkinRequestSchema.safeParse(body);
      if (!r.success) return this.error(res, 400, 'REQUEST-INVALID', r.error.message);
      m.kernel = r.data.kernel;
      m.checkins++;
      for (const p of r.data.patches) m.patches.set(p.patchId, p);
      const out: CheckinResponse = {
        machineId: m.id,
        tier: m.tier,
        offered: this.offersFor(m),
        revoked: this.patches
          .filter((p) => p.revoked && m.patches.has(p.patchId))
          .map((p) => ({ patchId: p.patchId, name: p.manifest.name, moduleName: p.manifest.module.name })),
        nextCheckinSeconds: this.intervalSeconds,
      };
      return this.json(res, out);
    }
    if (req.method === 'POST' && path === '/v1/report') {
      const r = reportRequestSchema.safeParse(body);
      if (!r.success) return this.error(res, 400, 'REQUEST-INVALID', r.error.message);
      m.patches.set(r.data.status.patchId, r.data.status);
      m.reports.push({ action: r.data.action, status: r.data.status });
      return this.json(res, { ok: true });
    }
    const mod = /^\/v1\/patches\/([0-9a-f]{16})\/module$/.exec(path);
    if (req.method === 'GET' && mod) {
      const p = this.offersFor(m).find((o) => o.patchId === mod[1]);
      if (!p) return this.error(res, 404, 'PATCH-UNKNOWN', 'not offered to this machine');
      const bytes = this.find(p.patchId).module;
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
      });
      return void res.end(bytes);
    }
    return this.error(res, 404, 'NOT-FOUND', path);
  }
}

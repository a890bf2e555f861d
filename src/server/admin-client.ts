/*
 * The admin API from the outside: what `suture publish/promote/revoke/token/machines/kernels/admin` use.
 * Talks HTTP to a running server (`--server URL --admin-token T`, or SUTURE_SERVER/SUTURE_ADMIN_TOKEN)
 * and turns an ErrorResponse into a SutureError with the server's code, message and hint.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SutureError } from '../diagnostic.js';
import { parseManifest } from '../manifest/manifest.js';
import { errorResponseSchema } from '../manifest/protocol.js';
import { describeTransportFailure } from '../manifest/transport.js';
import type { TokenRequest, WavePlanRequest } from './admin-protocol.js';
import type {
  AuditEntry,
  KernelSummary,
  MachineDetail,
  MachineRecord,
  PatchRecord,
  TierRollout,
  TokenRecord,
} from './store.js';

export interface AdminTarget {
  server: string;
  adminToken: string;
}

/** Resolve `--server`/`--admin-token` with their environment fallbacks, or say what is missing. */
export function adminTarget(opts: { server?: string; adminToken?: string }): AdminTarget {
  const server = opts.server ?? process.env.SUTURE_SERVER;
  const adminToken = opts.adminToken ?? process.env.SUTURE_ADMIN_TOKEN;
  if (!server) {
    throw new SutureError({
      code: 'ADMIN-NO-SERVER',
      message: 'which server? pass --server URL or set SUTURE_SERVER',
      hint: 'e.g. --server http://127.0.0.1:7070',
    });
  }
  if (!adminToken) {
    throw new SutureError({
      code: 'ADMIN-NO-TOKEN',
      message: 'admin calls need the admin token: pass --admin-token or set SUTURE_ADMIN_TOKEN',
      hint: 'it was printed at the server first start and is stored in <data>/admin-token',
    });
  }
  return { server: server.replace(/\/+$/, ''), adminToken };
}

export class AdminClient {
  constructor(readonly target: AdminTarget) {}

  async call<T>(method: string, path: string, body?: unknown, raw?: { data: Buffer }): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.target.adminToken}` };
    let payload: string | Blob | undefined;
    if (raw) {
      headers['content-type'] = 'application/octet-stream';
      payload = new Blob([new Uint8Array(raw.data)]);
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.target.server}${path}`, { method, headers, body: payload });
    } catch (e) {
      const f = describeTransportFailure(e);
      throw new SutureError({
        code: f.tls ? 'ADMIN-TLS' : 'ADMIN-UNREACHABLE',
        message: `cannot reach the server at ${this.target.server}: ${f.message}`,
        hint: f.tls?.hint ?? 'is `suture server` running there? check --server / SUTURE_SERVER',
      });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = errorResponseSchema.safeParse(json);
      if (err.success) {
        const e = err.data.error;
        throw new SutureError({
          code: e.code,
          message: `${method} ${path}: ${e.message} (HTTP ${res.status})`,
          ...(e.hint ? { hint: e.hint } : {}),
          ...(e.detail ? { detail: e.detail } : {}),
        });
      }
      throw new SutureError({
        code: 'ADMIN-HTTP',
        message: `${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`,
      });
    }
    return json as T;
  }

  /** Upload the module, then publish its manifest: the server signs and stores both atomically. */
  async publish(opts: {
    module: string;
    manifest: string;
    tier: string;
    cves?: string[];
    description?: string;
    rollout?: WavePlanRequest;
  }): Promise<PatchRecord> {
    const data = await readFile(opts.module);
    const manifest = parseManifest(await readFile(opts.manifest, 'utf8'), opts.manifest);
    const sha = createHash('sha256').update(data).digest('hex');
    if (sha !== manifest.module.sha256) {
      throw new SutureError({
        code: 'PUBLISH-HASH-MISMATCH',
        message: `${opts.module} has sha256 ${sha}, the manifest says ${manifest.module.sha256}`,
        location: { file: opts.manifest, field: 'module.sha256' },
        hint: 'publish the module with the manifest.json that `suture build` wrote next to it',
      });
    }
    await this.call('PUT', `/admin/v1/artifacts/${sha}`, undefined, { data });
    const body: Record<string, unknown> = { manifest, tier: opts.tier, cves: opts.cves ?? [] };
    if (opts.description !== undefined) body.description = opts.description;
    if (opts.rollout !== undefined) body.rollout = opts.rollout;
    return this.call<PatchRecord>('POST', '/admin/v1/patches', body);
  }

  /** A patch by full id, unique id prefix, or name (newest active patch of that name). */
  async resolvePatch(ref: string): Promise<PatchRecord> {
    const all = await this.call<PatchRecord[]>('GET', '/admin/v1/patches');
    const exact = all.find((p) => p.id === ref);
    if (exact) return exact;
    const byPrefix = all.filter((p) => p.id.startsWith(ref));
    if (byPrefix.length === 1 && byPrefix[0]) return byPrefix[0];
    const byName = all.filter((p) => p.name === ref && !p.revokedAt);
    if (byPrefix.length === 0 && byName.length === 1 && byName[0]) return byName[0];
    const candidates = byPrefix.length ? byPrefix : byName;
    throw new SutureError({
      code: candidates.length ? 'PATCH-AMBIGUOUS' : 'PATCH-UNKNOWN',
      message: candidates.length
        ? `${ref} matches ${candidates.length} patches`
        : `no patch ${ref} on the server`,
      detail: candidates.map((p) => `${p.id}  ${p.name} v${p.version}  ${p.kernelRelease}`),
      hint: 'give the full patch id (see `suture kernels --patches`)',
    });
  }

  promote(id: string, tier: string, rollout?: WavePlanRequest): Promise<PatchRecord> {
    return this.call('POST', `/admin/v1/patches/${id}/promote`, rollout ? { tier, rollout } : { tier });
  }
  rolloutStatus(id: string): Promise<TierRollout[]> {
    return this.call('GET', `/admin/v1/patches/${id}/rollout`);
  }
  halt(id: string, tier: string, reason: string): Promise<TierRollout[]> {
    return this.call('POST', `/admin/v1/patches/${id}/halt`, { tier, reason });
  }
  resume(id: string, tier: string): Promise<TierRollout[]> {
    return this.call('POST', `/admin/v1/patches/${id}/resume`, { tier });
  }
  revoke(id: string, reason = ''): Promise<PatchRecord> {
    return this.call('POST', `/admin/v1/patches/${id}/revoke`, { reason });
  }
  createToken(req: TokenRequest): Promise<TokenRecord & { token: string }> {
    return this.call('POST', '/admin/v1/tokens', req);
  }
  listTokens(): Promise<TokenRecord[]> {
    return this.call('GET', '/admin/v1/tokens');
  }
  listPatches(): Promise<PatchRecord[]> {
    return this.call('GET', '/admin/v1/patches');
  }
  listMachines(limit = 1000): Promise<MachineRecord[]> {
    return this.call('GET', `/admin/v1/machines?limit=${limit}`);
  }
  getMachine(id: string): Promise<MachineDetail> {
    return this.call('GET', `/admin/v1/machines/${encodeURIComponent(id)}`);
  }
  setMachineTier(id: string, tier: string): Promise<MachineDetail> {
    return this.call('POST', `/admin/v1/machines/${encodeURIComponent(id)}/tier`, { tier });
  }
  revokeToken(id: string): Promise<TokenRecord> {
    return this.call('POST', `/admin/v1/tokens/${encodeURIComponent(id)}/revoke`, {});
  }
  setMachineDisabled(id: string, disabled: boolean, reason = ''): Promise<MachineDetail> {
    return this.call(
      'POST',
      `/admin/v1/machines/${encodeURIComponent(id)}/${disabled ? 'disable' : 'enable'}`,
      {
        reason,
      },
    );
  }
  /** A new admin token (returned once); the one this client holds stops working. */
  rotateAdminToken(): Promise<{ token: string }> {
    return this.call('POST', '/admin/v1/admin-token/rotate', {});
  }
  listKernels(): Promise<KernelSummary[]> {
    return this.call('GET', '/admin/v1/kernels');
  }
  listAudit(): Promise<AuditEntry[]> {
    return this.call('GET', '/admin/v1/audit');
  }
}

/** Plain text table for the admin commands' human output (the `--json` output is the API's). */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The options every admin command takes. */
export interface AdminCliOptions {
  server?: string;
  adminToken?: string;
  json?: boolean;
}

/*
 * The admin API (`/admin/v1/…`): publish, promote, revoke, tokens, moving a machine to another tier,
 * and read-only views of the fleet.
 * Every route checks the admin token (Bearer only) and the JSON content type in `onRequest`, before a
 * byte of the body is read (admin-route.ts); every change writes an audit entry in the same transaction.
 * Before signing, publish inspects the module (module-inspection.ts).
 *
 * Publishing is two calls and atomic: the module is uploaded to the content-addressed artifact store
 * (temp file, sha256 checked, renamed), then the manifest is parsed, checked against the stored blob,
 * signed, and inserted — patch row, tiers and audit entry — in one transaction. A server killed at any
 * point leaves either no patch or a complete one.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canonicalJson, parseManifest } from '../manifest/manifest.js';
import { patchIdSchema } from '../manifest/protocol.js';
import {
  machineTierRequestSchema,
  promoteRequestSchema,
  publishRequestSchema,
  revokeRequestSchema,
  tokenRequestSchema,
} from './admin-protocol.js';
import { adminAudit, adminRoute } from './admin-route.js';
import type { ServerContext } from './context.js';
import { hashSecret, newId, newSecret } from './credentials.js';
import { HttpError, invalidRequest } from './http-error.js';
import { inspectModule } from './module-inspection.js';
import type { PatchRecord, TokenRecord } from './store.js';

const sha256Param = z.string().regex(/^[0-9a-f]{64}$/, 'sha256: 64 lowercase hex digits');

function parseId(raw: string): string {
  const r = patchIdSchema.safeParse(raw);
  if (!r.success) throw invalidRequest('the patch id', r.error);
  return r.data;
}

export function registerAdminApi(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const common = adminRoute(ctx);
  const audit = adminAudit;
  const patchOr404 = async (id: string): Promise<PatchRecord> => {
    const p = await store.getPatch(id);
    if (!p)
      throw new HttpError(404, 'PATCH-UNKNOWN', `no patch ${id} on this server`, {
        hint: 'see `suture kernels`',
      });
    return p;
  };

  app.put<{ Params: { sha256: string } }>(
    '/admin/v1/artifacts/:sha256',
    { ...common, bodyLimit: ctx.limits.upload },
    async (req, reply) => {
      const sha = sha256Param.safeParse(req.params.sha256);
      if (!sha.success) throw invalidRequest('the artifact name', sha.error);
      if (!req.headers['content-type']?.startsWith('application/octet-stream')) {
        throw new HttpError(415, 'CONTENT-TYPE', 'upload the module as application/octet-stream');
      }
      const declared = Number(req.headers['content-length'] ?? Number.NaN);
      if (declared > ctx.limits.upload) {
        throw new HttpError(
          413,
          'UPLOAD-TOO-LARGE',
          `the module (${declared} bytes) exceeds the upload limit`,
          {
            hint: 'start the server with a larger --max-upload if this module is genuine',
          },
        );
      }
      const stored = await ctx.artifacts.put(
        sha.data,
        req.body as NodeJS.ReadableStream as never,
        ctx.limits.upload,
      );
      return reply.code(201).send({ sha256: sha.data, size: stored.size });
    },
  );

  app.post('/admin/v1/patches', common, async (req, reply) => {
    const r = publishRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the publish request', r.error);
    let manifest = parseManifest(r.data.manifest, 'manifest');
    const blob = await ctx.artifacts.has(manifest.module.sha256);
    if (!blob) {
      throw new HttpError(
        409,
        'ARTIFACT-MISSING',
        `no module with sha256 ${manifest.module.sha256} was uploaded`,
        {
          hint: 'upload the module first (PUT /admin/v1/artifacts/SHA256); `suture publish` does both',
        },
      );
    }
    const bytes = await store.blobData(manifest.module.sha256);
    if (!bytes) throw new HttpError(409, 'ARTIFACT-MISSING', `module ${manifest.module.sha256} is gone`);
    inspectModule(bytes, manifest, ctx.limits);
    const cves = [...new Set([...manifest.cves, ...r.data.cves])].sort();
    const description = r.data.description ?? manifest.source.description ?? '';
    manifest = { ...manifest, cves, source: { ...manifest.source, ...(description ? { description } : {}) } };
    // re-parse so that what we sign is exactly what agents will parse
    manifest = parseManifest(JSON.parse(JSON.stringify(manifest)), 'manifest');
    const id = createHash('sha256').update(canonicalJson(manifest)).digest('hex').slice(0, 16);
    const rec: PatchRecord = {
      id,
      name: manifest.name,
      version: manifest.version,
      kernelRelease: manifest.kernel.release,
      buildId: manifest.kernel.buildId,
      moduleName: manifest.module.name,
      manifest,
      signature: ctx.signer.signManifest(manifest),
      sha256: manifest.module.sha256,
      size: blob.size,
      cves,
      description,
      publishedAt: new Date().toISOString(),
      tiers: [r.data.tier],
    };
    const out = await store.publish(
      rec,
      audit(req, 'publish', id, {
        name: rec.name,
        version: rec.version,
        kernel: `${rec.kernelRelease} ${rec.buildId}`,
        tier: r.data.tier,
        sha256: rec.sha256,
        ...(r.data.rollout ? { rollout: r.data.rollout } : {}),
      }),
      r.data.rollout,
    );
    if (out === 'exists') {
      throw new HttpError(409, 'PATCH-EXISTS', `this manifest is already published as patch ${id}`, {
        hint: `promote it instead: suture promote ${id} --tier …`,
      });
    }
    ctx.offers.clear();
    return reply.code(201).send(await patchOr404(id));
  });

  app.get('/admin/v1/patches', common, async () => store.listPatches());

  app.get<{ Params: { id: string } }>('/admin/v1/patches/:id', common, async (req) =>
    patchOr404(parseId(req.params.id)),
  );

  app.post<{ Params: { id: string } }>('/admin/v1/patches/:id/promote', common, async (req) => {
    const id = parseId(req.params.id);
    const r = promoteRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the promote request', r.error);
    const out = await store.promote(
      id,
      r.data.tier,
      audit(req, 'promote', id, {
        tier: r.data.tier,
        ...(r.data.rollout ? { rollout: r.data.rollout } : {}),
      }),
      new Date().toISOString(),
      r.data.rollout,
    );
    if (out === 'unknown') await patchOr404(id);
    if (out === 'revoked') {
      throw new HttpError(409, 'PATCH-REVOKED', `patch ${id} is revoked and cannot be promoted`, {
        hint: 'publish a fixed patch instead',
      });
    }
    ctx.offers.clear();
    return patchOr404(id);
  });

  app.post<{ Params: { id: string } }>('/admin/v1/patches/:id/revoke', common, async (req) => {
    const id = parseId(req.params.id);
    const r = revokeRequestSchema.safeParse(req.body ?? {});
    if (!r.success) throw invalidRequest('the revoke request', r.error);
    const out = await store.revoke(
      id,
      r.data.reason,
      audit(req, 'revoke', id, { reason: r.data.reason }),
      new Date().toISOString(),
    );
    if (out === 'unknown') await patchOr404(id);
    ctx.offers.clear();
    return patchOr404(id);
  });

  app.post('/admin/v1/tokens', common, async (req, reply) => {
    const r = tokenRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the token request', r.error);
    const token = newSecret('enroll');
    const now = new Date();
    const rec: TokenRecord = {
      id: newId('t'),
      tier: r.data.tier,
      note: r.data.note,
      uses: 0,
      createdAt: now.toISOString(),
    };
    if (r.data.maxUses !== undefined) rec.maxUses = r.data.maxUses;
    if (r.data.expiresInHours !== undefined) {
      rec.expiresAt = new Date(now.getTime() + r.data.expiresInHours * 3600_000).toISOString();
    }
    await store.createToken(
      { ...rec, hash: hashSecret(token) },
      audit(req, 'token.create', rec.id, { tier: rec.tier, note: rec.note, maxUses: rec.maxUses ?? null }),
    );
    return reply.code(201).send({ token, ...rec });
  });

  app.get('/admin/v1/tokens', common, async () => store.listTokens());
  app.get<{ Querystring: { limit?: string } }>('/admin/v1/machines', common, async (req) =>
    store.listMachines(Math.min(100_000, Number(req.query.limit ?? 1000) || 1000)),
  );
  app.get<{ Params: { id: string } }>('/admin/v1/machines/:id', common, async (req) => {
    const m = await store.getMachine(req.params.id);
    if (!m) throw new HttpError(404, 'MACHINE-UNKNOWN', `no machine ${req.params.id}`);
    return m;
  });
  app.post<{ Params: { id: string } }>('/admin/v1/machines/:id/tier', common, async (req) => {
    const r = machineTierRequestSchema.safeParse(req.body);
    if (!r.success) throw invalidRequest('the machine tier request', r.error);
    const out = await store.setMachineTier(
      req.params.id,
      r.data.tier,
      audit(req, 'machine.tier', req.params.id, { tier: r.data.tier }),
    );
    if (out === 'unknown') throw new HttpError(404, 'MACHINE-UNKNOWN', `no machine ${req.params.id}`);
    const m = await store.getMachine(req.params.id);
    if (!m) throw new HttpError(404, 'MACHINE-UNKNOWN', `no machine ${req.params.id}`);
    return m;
  });
  app.get('/admin/v1/kernels', common, async () => store.listKernels());
  app.get('/admin/v1/audit', common, async () => store.listAudit());
  app.get('/admin/v1/fleet', common, async () => ({
    fleet: await store.fleet(),
    rollout: await store.rollout(),
    failures: await store.failures(),
  }));
}

/*
 * The machine API (`/v1/…`): what agents talk to. See src/manifest/protocol.ts for the contract.
 *
 * A machine authenticates with its own credential (Bearer); it can only ever read its own offer list
 * and download modules offered to it — a patch for another kernel build or another tier is a 404 to it.
 * Every check-in answer is signed as a whole with the server's key (signing.ts) — alone, or in a batch
 * with the answers of its turn for an agent that asks (`batch-signature`) — bound to the machine
 * id, its check-in count as the sequence number and the time, and says what the server knows of the
 * machine's kernel (`kernelSupport`, from the offer cache); the key rotation chain rides along.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  ANSWER_FIELDS_HEADER,
  asksFor,
  BATCH_SIGNATURE_FIELD,
  type CheckinRequest,
  checkinRequestSchema,
  type EnrollResponse,
  enrollRequestSchema,
  KERNEL_SUPPORT_FIELD,
  machineApi,
  patchIdSchema,
  reportRequestSchema,
} from '../manifest/protocol.js';
import type { ServerContext } from './context.js';
import { bearer, hashSecret, newId, newSecret } from './credentials.js';
import { HttpError, invalidRequest, unauthorized } from './http-error.js';
import { offeredFor, reaches } from './offer-cache.js';

const noCredential = () =>
  unauthorized(
    'this call needs the machine credential (Authorization: Bearer …)',
    'enroll first (`suture agent enable TOKEN --server URL`)',
  );
const badCredential = () =>
  unauthorized(
    'the machine credential is not known to this server',
    're-enroll the machine with a fresh token',
  );

const machineDisabled = () =>
  new HttpError(403, 'MACHINE-DISABLED', 'this machine credential was disabled by an operator', {
    hint: 'ask the operator (`suture machines ID --enable`), or re-enroll the machine with a fresh token',
  });

/** the patches a check-in says the machine runs: a halted or waved patch stays offered to them */
function runningPatches(req: CheckinRequest): Set<string> {
  return new Set(
    req.patches.filter((p) => p.state === 'applied' || p.state === 'transition').map((p) => p.patchId),
  );
}

function credentialHash(req: FastifyRequest): string {
  const c = bearer(req.headers.authorization);
  if (!c) throw noCredential();
  return hashSecret(c);
}

export function registerMachineApi(app: FastifyInstance, ctx: ServerContext): void {
  const { store, limits } = ctx;
  // the budget rate-limit.ts counts these routes in, before authentication, by parsed credential
  const perCredential = 'machine' as const;
  /** 403 MACHINE-DISABLED for a credential an operator disabled, else 401 */
  const refused = async (hash: string) =>
    (await store.credentialDisabled(hash)) ? machineDisabled() : badCredential();

  app.post(
    machineApi.enroll,
    {
      bodyLimit: limits.machineBody,
      config: { limit: 'enroll' },
    },
    async (req, reply) => {
      const r = enrollRequestSchema.safeParse(req.body);
      if (!r.success) throw invalidRequest('the enrollment request', r.error);
      const credential = newSecret('machine');
      const machineId = newId('m');
      const out = await store.enroll({
        tokenHash: hashSecret(r.data.token),
        machineId,
        credentialHash: hashSecret(credential),
        hostname: r.data.hostname,
        kernelRelease: r.data.kernel.release,
        buildId: r.data.kernel.buildId,
        agentVersion: r.data.agentVersion,
        now: new Date().toISOString(),
      });
      if (!out.ok) {
        const why = {
          unknown: 'the enrollment token is not known to this server',
          revoked: 'the enrollment token was revoked',
          expired: 'the enrollment token has expired',
          exhausted: 'the enrollment token has been used as often as it allows',
        }[out.reason];
        throw new HttpError(403, 'TOKEN-INVALID', why, {
          hint: 'ask the operator for a token (`suture token create --tier …`)',
        });
      }
      const body: EnrollResponse = {
        machineId,
        credential,
        serverPublicKey: ctx.signer.publicKey,
        tier: out.tier,
        checkinIntervalSeconds: ctx.checkinIntervalSeconds,
      };
      return reply.code(201).send(body);
    },
  );

  app.post(
    machineApi.checkin,
    { bodyLimit: limits.machineBody, config: { limit: perCredential } },
    async (req, reply) => {
      const hash = credentialHash(req);
      const r = checkinRequestSchema.safeParse(req.body);
      if (!r.success) throw invalidRequest('the check-in', r.error);
      const issuedAt = new Date().toISOString();
      const m = await store.checkin(hash, r.data, issuedAt);
      if (!m) throw await refused(hash);
      if (await ctx.signer.refresh()) ctx.offers.clear(); // another instance rotated the key
      const o = await ctx.offers.get(m.kernelRelease, m.buildId, m.tier);
      // pre-serialised offer lists: the hot path is one UPDATE, this concatenation and one signature
      // over the whole answer, bound to the machine, its check-in sequence and the time
      const fields = req.headers[ANSWER_FIELDS_HEADER];
      const parts = {
        machineId: JSON.stringify(m.id),
        tier: JSON.stringify(m.tier),
        sequence: String(m.sequence),
        issuedAt: JSON.stringify(issuedAt),
        offered: o.partial ? offeredFor(o, m.id, runningPatches(r.data)) : o.offeredJson,
        revoked: o.revokedJson,
        nextCheckinSeconds: String(ctx.checkinIntervalSeconds),
        // only for an agent that understands it (protocol.ts ANSWER_FIELDS_HEADER)
        ...(asksFor(fields, KERNEL_SUPPORT_FIELD) ? o.support : {}),
      };
      // one signature per answer, or per turn's batch of answers with a proof each (answer-batcher.ts)
      const signed = asksFor(fields, BATCH_SIGNATURE_FIELD)
        ? await ctx.signer.signAnswerInBatch(parts)
        : ctx.signer.signAnswer(parts);
      const proof = 'proof' in signed ? `,"proof":${JSON.stringify(signed.proof)}` : '';
      const body = `${signed.text.slice(0, -1)},"signature":${JSON.stringify(signed.signature)}${proof},"keys":${signed.keysJson}}`;
      return reply.type('application/json; charset=utf-8').send(body);
    },
  );

  app.post(
    machineApi.report,
    { bodyLimit: limits.machineBody, config: { limit: perCredential } },
    async (req) => {
      const hash = credentialHash(req);
      const r = reportRequestSchema.safeParse(req.body);
      if (!r.success) throw invalidRequest('the report', r.error);
      const m = await store.report(hash, r.data, new Date().toISOString());
      if (m === undefined) throw await refused(hash);
      if (m === 'unknown-patch') {
        throw new HttpError(
          404,
          'PATCH-UNKNOWN',
          `patch ${r.data.status.patchId} is not known to this server`,
        );
      }
      if (typeof m === 'object' && m.halted) ctx.offers.clear(); // no further machine of its tier gets it
      if (m === 'not-offered') {
        throw new HttpError(
          404,
          'PATCH-NOT-OFFERED',
          `patch ${r.data.status.patchId} was never offered to this machine`,
          {
            hint: 'report only on patches a check-in offered',
          },
        );
      }
      return { ok: true as const };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/patches/:id/module',
    { config: { limit: perCredential } },
    async (req, reply) => {
      const hash = credentialHash(req);
      const id = patchIdSchema.safeParse(req.params.id);
      if (!id.success) throw invalidRequest('the patch id', id.error);
      const m = await store.machineByCredential(hash);
      if (!m) throw await refused(hash);
      const p = await store.getPatch(id.data);
      const visible =
        p &&
        !p.revokedAt &&
        p.kernelRelease === m.kernelRelease &&
        p.buildId === m.buildId &&
        p.tiers.includes(m.tier) &&
        reaches(await ctx.offers.get(m.kernelRelease, m.buildId, m.tier), p.id, m.id);
      if (!p || !visible) {
        throw new HttpError(404, 'PATCH-NOT-OFFERED', `patch ${id.data} is not offered to this machine`, {
          hint: 'download only what the last check-in offered',
        });
      }
      return reply
        .type('application/octet-stream')
        .header('content-length', p.size)
        .header('x-suture-sha256', p.sha256)
        .send(await ctx.artifacts.read(p.sha256));
    },
  );
}

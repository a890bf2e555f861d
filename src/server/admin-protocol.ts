/*
 * The admin API's request bodies (`/admin/v1/…`), shared by the server and the CLI's admin client.
 * Responses are the store's records (store.ts) as JSON. Every call needs the admin token as Bearer.
 *
 *   PUT  /admin/v1/artifacts/:sha256      module bytes (application/octet-stream) → { sha256, size }
 *   POST /admin/v1/patches                PublishRequest → PatchRecord (201; 409 if already published)
 *   GET  /admin/v1/patches                → PatchRecord[]        GET /admin/v1/patches/:id → PatchRecord
 *   POST /admin/v1/patches/:id/promote    PromoteRequest → PatchRecord
 *   POST /admin/v1/patches/:id/revoke     RevokeRequest → PatchRecord
 *   GET  /admin/v1/patches/:id/rollout    → TierRollout[] (each tier's waves and halt)
 *   POST /admin/v1/patches/:id/halt       HaltRequest → TierRollout[]   (resume: ResumeRequest, same answer)
 *   POST /admin/v1/machines/:id/tier      MachineTierRequest → MachineDetail (404 if unknown)
 *   POST /admin/v1/tokens                 TokenRequest → { token (shown once), ...TokenRecord } (201)
 *   POST /admin/v1/tokens/:id/revoke      {} → TokenRecord (404 if unknown)
 *   POST /admin/v1/machines/:id/disable   MachineDisableRequest → MachineDetail (its credential gets 403)
 *   POST /admin/v1/machines/:id/enable    MachineDisableRequest → MachineDetail
 *   POST /admin/v1/admin-token/rotate     {} → { token } (the old token and every dashboard session end)
 *   GET  /admin/v1/tokens | machines | machines/:id | kernels | audit | fleet
 */
import { z } from 'zod';
import { tierSchema } from '../manifest/protocol.js';

/**
 * A phased rollout within a tier: cumulative percentages (1..100, strictly increasing, ending at 100),
 * how many healthy machines a wave needs before the next opens, and its minimum soak time.
 */
export const wavePlanSchema = z
  .object({
    waves: z
      .array(z.number().int().min(1, 'a wave is 1..100 %').max(100, 'a wave is 1..100 %'))
      .min(1)
      .max(20)
      .refine((w) => w.every((p, i) => i === 0 || p > (w[i - 1] ?? 0)), {
        message: 'waves must grow strictly (e.g. 10,50,100)',
      })
      .refine((w) => w[w.length - 1] === 100, { message: 'the last wave must be 100 (the whole tier)' }),
    gateCheckins: z.number().int().min(1).max(1_000_000).default(1),
    soakSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86400)
      .default(600),
  })
  .strict();
export type WavePlanRequest = z.input<typeof wavePlanSchema>;

const cveSchema = z.string().regex(/^CVE-\d{4}-\d{4,}$/, 'CVE-YYYY-NNNN expected');

export const publishRequestSchema = z
  .object({
    /** the manifest `suture build` wrote (parsed by the server with parseManifest) */
    manifest: z.unknown(),
    tier: tierSchema,
    /** CVEs the patch fixes, merged into the manifest's list before signing */
    cves: z.array(cveSchema).max(100).default([]),
    /** shown on the dashboard; becomes the manifest's source.description before signing */
    description: z.string().max(4000).optional(),
    /** roll the tier out in waves instead of all at once */
    rollout: wavePlanSchema.optional(),
  })
  .strict();
export type PublishRequest = z.input<typeof publishRequestSchema>;

export const promoteRequestSchema = z
  .object({ tier: tierSchema, rollout: wavePlanSchema.optional() })
  .strict();
export type PromoteRequest = z.input<typeof promoteRequestSchema>;
export const haltRequestSchema = z.object({ tier: tierSchema, reason: z.string().min(1).max(1000) }).strict();
export const resumeRequestSchema = z.object({ tier: tierSchema }).strict();
export const machineTierRequestSchema = z.object({ tier: tierSchema }).strict();
export const revokeRequestSchema = z.object({ reason: z.string().max(1000).default('') }).strict();

export const tokenRequestSchema = z
  .object({
    tier: tierSchema,
    note: z.string().max(200).default(''),
    /** how many machines may enroll with it (unlimited when absent) */
    maxUses: z.number().int().min(1).optional(),
    /** hours until it expires (never when absent) */
    expiresInHours: z
      .number()
      .min(0.01)
      .max(24 * 3650)
      .optional(),
  })
  .strict();
export type TokenRequest = z.input<typeof tokenRequestSchema>;

/** the body of calls that need none (still JSON: the admin API takes nothing else) */
export const emptyRequestSchema = z.object({}).strict();
export const machineDisableRequestSchema = z.object({ reason: z.string().max(1000).default('') }).strict();

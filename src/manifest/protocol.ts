/*
 * The wire protocol between a machine's agent and the Suture server (`/v1/…`).
 *
 * A machine enrolls once with an enrollment token (which fixes its tier) and receives its own
 * credential, the server's ed25519 public key and its tier. From then on it checks in with the
 * credential as `Authorization: Bearer <credential>`, telling the server which exact kernel it runs
 * (release + vmlinux GNU build id) and the state of every Suture livepatch on it; the server answers
 * with the patches offered for that exact kernel and the machine's tier (newest first: the first one
 * is the cumulative patch to converge to), the patches the agent must revert because they were
 * revoked, and when to check in next. After each apply or revert the agent posts a report.
 *
 * The check-in answer is signed as a whole by the server's key (answer-signature.ts), bound to the
 * machine id, a per-machine sequence number that only grows, and the time it was issued: the agent
 * refuses an answer for another machine, one not newer than the last it accepted, or an old one.
 * The answer also says, signed, what the server knows of the machine's kernel (`kernelSupport`:
 * patched, upgrade-required with the kernels of its flavour that are, or unsupported).
 * When the server's key was rotated, `keys` carries the chain of announcements (key-rotation.ts).
 *
 *   POST /v1/enroll           EnrollRequest  → EnrollResponse              (no auth; token in body)
 *   POST /v1/checkin          CheckinRequest → CheckinResponse             (Bearer credential)
 *   POST /v1/report           ReportRequest  → ReportResponse              (Bearer credential)
 *   GET  /v1/patches/:id/module              → the module bytes (application/octet-stream)
 *                                              (Bearer credential; only patches offered to the machine)
 *
 * Every error is an HTTP 4xx/5xx with an `ErrorResponse` body. Every object is `.strict()`: an unknown
 * field is a 400, never silently ignored. This file is a leaf shared by `server/` and `agent/`.
 */
import { z } from 'zod';
import { MAX_PROOF_STEPS } from './answer-batch.js';
import { manifestSchema } from './manifest.js';

const hex = (len: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${len}}$`), `${len} lowercase hex digits expected`);

/** A patch id as the server names it: 16 lowercase hex digits (prefix of sha256(canonical manifest)). */
export const patchIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'patch id: 16 lowercase hex digits');
export type PatchId = z.infer<typeof patchIdSchema>;

/** A tier name: `canary`, `stable`, or any operator-chosen lowercase word. */
export const tierSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'tier: lowercase letters, digits, - and _');

/** The exact kernel a machine runs. A patch is only offered to (and loaded onto) this exact pair. */
export const kernelIdentitySchema = z
  .object({
    /** `uname -r` */
    release: z.string().min(1).max(128),
    /** GNU build id of the running vmlinux (from /sys/kernel/notes), 40 lowercase hex digits */
    buildId: hex(40),
  })
  .strict();
export type KernelIdentity = z.infer<typeof kernelIdentitySchema>;

const hostnameSchema = z.string().min(1).max(253);
const agentVersionSchema = z.string().min(1).max(64);
const reasonSchema = z.string().max(4096);

/** A task that keeps a livepatch transition from completing (from /proc/PID/patch_state and stack). */
export const blockingTaskSchema = z
  .object({
    pid: z.number().int().min(0),
    comm: z.string().max(64),
    /** kernel stack lines, innermost first (may be empty when unreadable) */
    stack: z.array(z.string().max(512)).max(64).default([]),
  })
  .strict();

/** An unfinished livepatch transition (`/sys/kernel/livepatch/NAME/transition` = 1). */
export const transitionSchema = z
  .object({
    /** seconds since the transition started */
    seconds: z.number().min(0),
    /** true when the agent gave up waiting (the patch is reported stalled) */
    stalled: z.boolean(),
    blockingTasks: z.array(blockingTaskSchema).max(256).default([]),
  })
  .strict();
export type Transition = z.infer<typeof transitionSchema>;

/**
 * State of one Suture livepatch on a machine:
 * - `applied`: loaded and enabled, transition complete
 * - `transition`: loaded, the consistency-model transition is still running (see `transition`)
 * - `failed`: could not be applied (verification, load or transition failure: see `reason`)
 * - `reverted`: was applied and has been disabled and unloaded (e.g. after a revoke)
 * - `bad`: the kernel oopsed, WARNed, panicked or did not come back after it was loaded; the host
 *   marked it bad and never loads it again (`reason` says which, `excerpt` carries the kernel log).
 *   The server halts the patch for the machine's tier on the first such report.
 */
export const patchStateSchema = z.enum(['applied', 'transition', 'failed', 'reverted', 'bad']);
export type PatchState = z.infer<typeof patchStateSchema>;

export const patchStatusSchema = z
  .object({
    patchId: patchIdSchema,
    state: patchStateSchema,
    /** why it failed (or was reverted), in the agent's words; required for `failed` */
    reason: reasonSchema.optional(),
    transition: transitionSchema.optional(),
    /** for `bad`: the kernel log lines around the oops/WARN/panic (dmesg or the previous boot's journal) */
    excerpt: z.string().max(16384).optional(),
  })
  .strict()
  .refine(
    (s) => (s.state !== 'failed' && s.state !== 'bad') || (s.reason !== undefined && s.reason.length > 0),
    { message: 'a failed or bad patch needs a reason', path: ['reason'] },
  );
export type PatchStatus = z.infer<typeof patchStatusSchema>;

// ---------------------------------------------------------------------------------------------------
// POST /v1/enroll

export const enrollRequestSchema = z
  .object({
    /** the enrollment token from `suture token create` */
    token: z.string().min(1).max(256),
    hostname: hostnameSchema,
    kernel: kernelIdentitySchema,
    agentVersion: agentVersionSchema,
  })
  .strict();
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

export const enrollResponseSchema = z
  .object({
    machineId: z.string().regex(/^m-[0-9a-f]{16}$/),
    /** the machine's own secret: send as `Authorization: Bearer <credential>`; shown once */
    credential: z.string().min(32).max(256),
    /** server's ed25519 public key (raw 32 bytes, base64): verify every manifest signature with it */
    serverPublicKey: z.string().min(40).max(64),
    tier: tierSchema,
    /** seconds until the first check-in (before jitter) */
    checkinIntervalSeconds: z.number().int().min(1),
  })
  .strict();
export type EnrollResponse = z.infer<typeof enrollResponseSchema>;

// ---------------------------------------------------------------------------------------------------
// POST /v1/checkin

export const checkinRequestSchema = z
  .object({
    kernel: kernelIdentitySchema,
    hostname: hostnameSchema,
    agentVersion: agentVersionSchema,
    /** every Suture livepatch the agent knows about on this machine */
    patches: z.array(patchStatusSchema).max(256),
  })
  .strict();
export type CheckinRequest = z.infer<typeof checkinRequestSchema>;

export const offeredPatchSchema = z
  .object({
    patchId: patchIdSchema,
    /** the manifest exactly as signed; kernel.release/buildId equal the machine's kernel */
    manifest: manifestSchema,
    /** ed25519 signature (base64) over signedPayload(manifest), see signature.ts */
    signature: z.string().min(80).max(100),
    /** sha256 of the module bytes (same as manifest.module.sha256, which the signature covers) */
    sha256: hex(64),
    /** bytes; 0 is parsed (and refused by the agent for this patch alone, not for the whole answer) */
    size: z.number().int().min(0),
    /** where to GET the module, relative to the server URL (`/v1/patches/ID/module`) */
    url: z.string().startsWith('/v1/'),
    publishedAt: z.string().datetime(),
  })
  .strict();
export type OfferedPatch = z.infer<typeof offeredPatchSchema>;

export const revokedPatchSchema = z
  .object({
    patchId: patchIdSchema,
    /** livepatch name (sysfs `/sys/kernel/livepatch/livepatch_NAME` after - → _) */
    name: z.string().min(1),
    /** module name as loaded */
    moduleName: z.string().min(1),
  })
  .strict();
export type RevokedPatch = z.infer<typeof revokedPatchSchema>;

/** A new server key, announced under the key it replaces (see key-rotation.ts). */
export const keyAnnouncementSchema = z
  .object({
    /** the new ed25519 public key (raw 32 bytes, base64) */
    publicKey: z.string().min(40).max(64),
    /** the key it replaces, which signed this announcement */
    previous: z.string().min(40).max(64),
    at: z.string().datetime(),
    /** ed25519 signature by `previous` over announcementPayload(publicKey, previous, at) */
    signature: z.string().min(80).max(100),
  })
  .strict();
export type KeyAnnouncement = z.infer<typeof keyAnnouncementSchema>;

/**
 * What the server knows of the machine's booted kernel (the check-in's release + build id):
 * - `patched`: it holds a non-revoked patch for this exact kernel, in some tier (offered to this
 *   machine or not yet: another tier, a wave not open, a halt);
 * - `upgrade-required`: none for this build, but patches for another build or release of the same
 *   flavour (`cloud-amd64` in `6.1.0-53-cloud-amd64`): booting one of those would get it patched;
 * - `unsupported`: no patch for this kernel nor for any kernel of its flavour.
 */
export const kernelSupportSchema = z.enum(['patched', 'upgrade-required', 'unsupported']);
export type KernelSupport = z.infer<typeof kernelSupportSchema>;

/** At most this many kernels are named in `patchedKernels`. */
export const MAX_PATCHED_KERNELS = 4;

/**
 * The request header by which an agent names the optional answer fields it understands, comma-separated.
 * A server adds such a field only for an agent that names it: an agent from before the field parses
 * answers strictly and would refuse every one that carried it (so a server upgraded before its fleet
 * keeps serving it). An older server ignores the header.
 */
export const ANSWER_FIELDS_HEADER = 'suture-answer-fields';
/** `kernelSupport` and `patchedKernels` */
export const KERNEL_SUPPORT_FIELD = 'kernel-support';
/** `proof`: the answer may be signed in a batch, one signature over many answers (answer-batch.ts) */
export const BATCH_SIGNATURE_FIELD = 'batch-signature';
/** the header value of this version's agent: every optional field above */
export const AGENT_ANSWER_FIELDS = `${KERNEL_SUPPORT_FIELD}, ${BATCH_SIGNATURE_FIELD}`;

/** Whether a check-in's `suture-answer-fields` header names `field`. */
export function asksFor(header: string | string[] | undefined, field: string): boolean {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text.split(',').some((f) => f.trim().toLowerCase() === field);
}

export const checkinResponseSchema = z
  .object({
    /** the machine this answer is for: an agent refuses an answer for any other */
    machineId: z.string(),
    tier: tierSchema,
    /** per-machine, grows by one at every check-in: an agent refuses one not above the last it accepted */
    sequence: z.number().int().min(1),
    /** when the server issued it: an agent refuses one older than MAX_ANSWER_AGE */
    issuedAt: z.string().datetime(),
    /** patches for this exact kernel and tier, newest first (the first is the one to converge to) */
    offered: z.array(offeredPatchSchema),
    /** patches this machine reported (or might have) that were revoked: revert them */
    revoked: z.array(revokedPatchSchema),
    nextCheckinSeconds: z.number().int().min(1),
    /** what the server knows of this kernel (signed; absent from an older server's answer) */
    kernelSupport: kernelSupportSchema.optional(),
    /** with `upgrade-required`: kernels of the same flavour the server has patches for, newest first */
    patchedKernels: z.array(kernelIdentitySchema).max(MAX_PATCHED_KERNELS).optional(),
    /**
     * ed25519 signature (base64) by the server's current key over checkinSignedBytes(every other field
     * but keys and proof), or with `proof` over the root of the batch the answer was signed in
     */
    signature: z.string().min(80).max(100),
    /** with `batch-signature` asked for: the answer's salt and way to its batch's root (answer-batch.ts) */
    proof: z
      .object({
        salt: z.string().length(24),
        path: z
          .array(z.object({ side: z.enum(['left', 'right']), hash: z.string().length(44) }).strict())
          .max(MAX_PROOF_STEPS),
      })
      .strict()
      .optional(),
    /** key rotations, oldest first; each new key signed by the one before (not covered by `signature`) */
    keys: z.array(keyAnnouncementSchema).max(64).default([]),
  })
  .strict();
export type CheckinResponse = z.infer<typeof checkinResponseSchema>;

// ---------------------------------------------------------------------------------------------------
// POST /v1/report — the result of one apply or revert, sent right after it happened

export const reportRequestSchema = z
  .object({
    kernel: kernelIdentitySchema,
    /** the new state of the patch; `failed` carries the reason, `transition` the stall */
    status: patchStatusSchema,
    /** what the agent tried */
    action: z.enum(['apply', 'revert']),
  })
  .strict();
export type ReportRequest = z.infer<typeof reportRequestSchema>;

export const reportResponseSchema = z.object({ ok: z.literal(true) }).strict();
export type ReportResponse = z.infer<typeof reportResponseSchema>;

// ---------------------------------------------------------------------------------------------------
// Errors

export const errorResponseSchema = z
  .object({
    error: z
      .object({
        /** stable code, e.g. `AUTH-INVALID`, `REQUEST-INVALID`, `TOKEN-UNKNOWN` */
        code: z.string(),
        message: z.string(),
        hint: z.string().optional(),
        /** per-field problems for REQUEST-INVALID (`path: message`) */
        detail: z.array(z.string()).optional(),
      })
      .strict(),
  })
  .strict();
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** Paths of the machine API, so agent and server never disagree on a string. */
export const machineApi = {
  enroll: '/v1/enroll',
  checkin: '/v1/checkin',
  report: '/v1/report',
  module: (patchId: string) => `/v1/patches/${patchId}/module`,
} as const;

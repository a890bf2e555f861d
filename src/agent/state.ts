/*
 * The agent's persisted state: everything it must remember across a crash or a reboot.
 *
 * One JSON document, `state.json` in the state directory, always replaced whole and atomically: the new
 * content goes to a temporary file in the same directory, is fsync'ed, renamed over the old file, and
 * the directory is fsync'ed so the rename itself survives a power cut. A reader therefore sees either
 * the previous or the next state, never a torn one — whatever instant the agent is killed at.
 *
 * What it holds:
 *  - the enrollment: server URL, this machine's id and credential, the server's ed25519 public key
 *    pinned at enrollment (every answer and manifest is verified against it; it moves only through a
 *    rotation announcement signed by it, manifest/key-rotation.ts — never to a key merely sent);
 *  - the last check-in (when, whether it succeeded and why not) and the back-off counter;
 *  - per patch, what the agent did with it (applied, refused, failed, reverted) and why;
 *  - the intent journal (intent.ts): the one kernel operation that may be in flight;
 *  - the patches offered at the last successful check-in;
 *  - the outbox: results not yet delivered to the server (sent again when it comes back);
 *  - the last check-in answer accepted (sequence number and time: an older one is refused) and, per
 *    patch lineage (manifest name on this kernel), the highest version applied (never installed lower);
 *  - what that answer said of the kernel it was for (patched, upgrade-required, unsupported).
 *
 * Parse, don't validate: a state file that does not match the schema is an error naming the field,
 * never silently replaced (an operator must decide whether to re-enroll).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SutureError } from '../diagnostic.js';
import {
  kernelIdentitySchema,
  kernelSupportSchema,
  MAX_PATCHED_KERNELS,
  patchIdSchema,
  reportRequestSchema,
  transitionSchema,
} from '../manifest/protocol.js';

export const DEFAULT_STATE_DIR = '/var/lib/suture/agent';

/** `--state-dir`, else SUTURE_AGENT_STATE, else /var/lib/suture/agent. */
export function resolveStateDir(flag?: string): string {
  return flag ?? process.env.SUTURE_AGENT_STATE ?? DEFAULT_STATE_DIR;
}

export const enrollmentSchema = z
  .object({
    server: z.string().url(),
    machineId: z.string().min(1),
    credential: z.string().min(1),
    /** the server's ed25519 public key (raw, base64): pinned at enrollment, moved only by an announced rotation */
    serverPublicKey: z.string().min(1),
    tier: z.string(),
    enrolledAt: z.string(),
  })
  .strict();
export type Enrollment = z.infer<typeof enrollmentSchema>;

/** Why the host's crash-loop guard marked a patch bad (kernel-port.ts BadReason). */
const badReasonSchema = z.enum(['oops', 'warn', 'panic', 'no-return']);

/** What the agent did with one patch (finer than the wire's PatchState; see report.ts for the mapping). */
export const patchOutcomeSchema = z.enum([
  /** loaded and enabled, transition complete */
  'applied',
  /** loaded and enabled, the transition had not completed when last looked at */
  'transition',
  /** the transition did not finish in time and was rolled back: the machine is as before */
  'stalled',
  /** the host layer failed to load or enable it */
  'failed',
  /** never handed to the kernel: bad signature, bad hash, or built for another kernel */
  'refused',
  /** reverted because the server revoked it */
  'reverted',
  /** the host's crash-loop guard marked it bad (oops/WARN/panic after its load, or no return): never applied again */
  'bad',
]);
export type PatchOutcome = z.infer<typeof patchOutcomeSchema>;

export const patchRecordSchema = z
  .object({
    patchId: patchIdSchema,
    name: z.string(),
    /** the kernel's name for it (sysfs dir and module name), e.g. `livepatch_cmdline` */
    moduleName: z.string(),
    version: z.string(),
    sha256: z.string(),
    outcome: patchOutcomeSchema,
    /** stable code of what went wrong (SutureError code), when it did */
    code: z.string().optional(),
    reason: z.string().optional(),
    transition: transitionSchema.optional(),
    /** for `bad`: why the host marked it bad, and the kernel log excerpt */
    badReason: badReasonSchema.optional(),
    kernelLog: z.string().max(8192).optional(),
    /** how many times the agent handed this patch to the kernel */
    attempts: z.number().int().min(0),
    /** the kernel it was handed to (the manifest's, verified to be the running one); absent in old records */
    kernel: kernelIdentitySchema.optional(),
    at: z.string(),
  })
  .strict();
export type PatchRecord = z.infer<typeof patchRecordSchema>;

export const intentSchema = z
  .object({
    op: z.enum(['apply', 'revert']),
    patchId: patchIdSchema,
    name: z.string(),
    moduleName: z.string(),
    version: z.string(),
    sha256: z.string(),
    startedAt: z.string(),
  })
  .strict();
export type Intent = z.infer<typeof intentSchema>;

/** The patches the server offered at the last successful check-in (what "all applicable" means). */
export const offerSummarySchema = z
  .object({ patchId: patchIdSchema, name: z.string(), version: z.string(), replace: z.boolean() })
  .strict();
export type OfferSummary = z.infer<typeof offerSummarySchema>;

export const lastCheckSchema = z
  .object({
    at: z.string(),
    ok: z.boolean(),
    /** why the check-in failed, in plain words */
    error: z.string().optional(),
  })
  .strict();

/** The last signed check-in answer the agent accepted (answer.ts): anything not newer is refused. */
export const lastAnswerSchema = z
  .object({ sequence: z.number().int().min(1), issuedAt: z.string() })
  .strict();
export type LastAnswer = z.infer<typeof lastAnswerSchema>;

/**
 * What the server said of the kernel at the last accepted answer (`kernelSupport`, protocol.ts), and
 * for which kernel: it speaks of that kernel only, not of one booted since.
 */
export const kernelSupportRecordSchema = z
  .object({
    kernel: kernelIdentitySchema,
    support: kernelSupportSchema,
    /** with `upgrade-required`: kernels of the same flavour the server has patches for, newest first */
    patchedKernels: z.array(kernelIdentitySchema).max(MAX_PATCHED_KERNELS).default([]),
  })
  .strict();
export type KernelSupportRecord = z.infer<typeof kernelSupportRecordSchema>;

export const agentStateSchema = z
  .object({
    schema: z.literal(1),
    enrollment: enrollmentSchema.nullable(),
    /** server-provided check-in interval */
    intervalSeconds: z.number().positive(),
    lastCheck: lastCheckSchema.nullable(),
    lastSuccessAt: z.string().nullable(),
    /** consecutive failed check-ins (drives the back-off) */
    failures: z.number().int().min(0),
    kernel: z.object({ release: z.string(), buildId: z.string() }).strict().nullable(),
    /** false when the running kernel has no livepatch support (no /sys/kernel/livepatch) */
    kernelSupported: z.boolean().nullable(),
    /** keyed by patch id */
    patches: z.record(z.string(), patchRecordSchema),
    offered: z.array(offerSummarySchema),
    intent: intentSchema.nullable(),
    /** reports the server has not acknowledged yet, oldest first */
    outbox: z.array(reportRequestSchema),
    /** the last check-in answer accepted; reset by enrolling again (a new machine id) */
    lastAnswer: lastAnswerSchema.nullable().default(null),
    /** highest version applied per lineage (manifest/lineage.ts lineageKey → version) */
    lineage: z.record(z.string(), z.string()).default({}),
    /** the last accepted answer's word on the kernel; null before, or from a server that sends none */
    kernelSupport: kernelSupportRecordSchema.nullable().default(null),
  })
  .strict();
export type AgentState = z.infer<typeof agentStateSchema>;

export function emptyState(): AgentState {
  return {
    schema: 1,
    enrollment: null,
    intervalSeconds: 600,
    lastCheck: null,
    lastSuccessAt: null,
    failures: 0,
    kernel: null,
    kernelSupported: null,
    patches: {},
    offered: [],
    intent: null,
    outbox: [],
    lastAnswer: null,
    lineage: {},
    kernelSupport: null,
  };
}

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

/** Read the state; a missing file is the empty state, a corrupt one an error naming the field. */
export function loadState(dir: string): AgentState {
  const file = statePath(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new SutureError({
      code: 'AGENT-STATE-UNREADABLE',
      message: `cannot read ${file}: ${(e as Error).message}`,
      location: { file },
      hint: 'run the agent as root, or point --state-dir / SUTURE_AGENT_STATE at a writable directory',
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SutureError({
      code: 'AGENT-STATE-CORRUPT',
      message: `${file} is not JSON: ${(e as Error).message}`,
      location: { file },
      why: 'the state file is only ever replaced atomically, so something else wrote to it',
      hint: `move ${file} away and run \`suture agent enable\` again`,
    });
  }
  const r = agentStateSchema.safeParse(value);
  if (!r.success) {
    throw new SutureError({
      code: 'AGENT-STATE-CORRUPT',
      message: `${file} does not match the agent state schema`,
      location: { file },
      detail: r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      hint: `move ${file} away and run \`suture agent enable\` again`,
    });
  }
  return r.data;
}

/** Write `data` to `file` atomically: temp file, fsync, rename, fsync the directory. */
export function writeFileAtomic(file: string, data: string | Uint8Array, dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export function saveState(dir: string, state: AgentState): void {
  const checked = agentStateSchema.parse(state);
  writeFileAtomic(statePath(dir), `${JSON.stringify(checked, null, 2)}\n`, dir);
}

/** Load, change, save: the one way the agent mutates its state. */
export function updateState(dir: string, change: (s: AgentState) => void): AgentState {
  const s = loadState(dir);
  change(s);
  saveState(dir, s);
  return s;
}

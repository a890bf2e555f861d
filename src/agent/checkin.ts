/*
 * One check-in: tell the server what this machine runs, then converge to what it offers.
 *
 *   1. read the kernel's truth (release, build id, loaded livepatches) and settle the intent journal;
 *   2. POST /v1/checkin with every patch the agent knows about — on failure record why (status shows
 *      it) and let the daemon back off; applied patches stay as they are;
 *   3. accept the answer only when it is signed as a whole by the trusted key (following an announced
 *      key rotation), is for this machine and is newer than the last one accepted (answer.ts) — a
 *      refused answer is a failed check-in and touches nothing; what it says of the kernel is kept, and
 *      patches left behind by a kernel change are re-worded by it (kernel-change.ts);
 *   4. revert what the server revoked, among the patches this agent applied (revocation.ts);
 *   5. for each offered patch, newest first: converge on it (converge.ts: verify, download, replace an
 *      older version of its lineage, apply, record, report). Once a cumulative patch is applied the
 *      older offers are covered by it and skipped;
 *   6. delete cached modules no longer needed (module-cache.ts) and flush the outbox of reports.
 */
import { join } from 'node:path';
import { SutureError, toDiagnostic } from '../diagnostic.js';
import type { CheckinResponse, KernelIdentity } from '../manifest/protocol.js';
import { keyFingerprint } from '../manifest/signature.js';
import { VERSION } from '../version.js';
import { acceptAnswer } from './answer.js';
import { syncBadPatches } from './bad-patches.js';
import type { AgentContext } from './context.js';
import { converge } from './converge.js';
import { reconcile, syncRecords } from './journal.js';
import { rewordKernelChange } from './kernel-change.js';
import type { LoadedLivepatch, RunningKernel } from './kernel-port.js';
import { neededModules, pruneModules } from './module-cache.js';
import { flushOutbox, patchStatusOf } from './report.js';
import { revertRevoked } from './revocation.js';
import { ServerClient } from './server-client.js';
import { type AgentState, type Enrollment, loadState, updateState } from './state.js';

export { MAX_ATTEMPTS } from './converge.js';
export { moduleStorePath } from './module-cache.js';

export const AGENT_VERSION = VERSION;

export type { AgentContext } from './context.js';

export type CheckinOutcome =
  | {
      ok: true;
      intervalSeconds: number;
      applied: string[];
      reverted: string[];
      refused: string[];
      failed: string[];
    }
  | { ok: false; error: string; code: string };

function now(): string {
  return new Date().toISOString();
}

export function requireEnrollment(state: AgentState, stateDir: string): Enrollment {
  if (!state.enrollment) {
    throw new SutureError({
      code: 'AGENT-NOT-ENROLLED',
      message: `this machine is not enrolled (no enrollment in ${join(stateDir, 'state.json')})`,
      hint: 'run `suture agent enable <TOKEN> --server URL` first',
    });
  }
  return state.enrollment;
}

async function readKernel(ctx: AgentContext): Promise<{ running: RunningKernel; loaded: LoadedLivepatch[] }> {
  const running = await ctx.kernel.runningKernel();
  const loaded = running.livepatchSupported ? await ctx.kernel.listLivepatches() : [];
  return { running, loaded };
}

/** Ask the server and accept its answer, or say why not (nothing else happens then). */
async function fetchAnswer(
  ctx: AgentContext,
  client: ServerClient,
  kernelId: KernelIdentity,
  before: AgentState,
  enrollment: Enrollment,
): Promise<{ ok: true; answer: CheckinResponse; key: string } | { ok: false; error: string; code: string }> {
  try {
    const { answer, raw } = await client.checkin({
      kernel: kernelId,
      hostname: ctx.hostname,
      agentVersion: AGENT_VERSION,
      patches: Object.values(before.patches)
        .sort((a, b) => (a.at < b.at ? -1 : 1))
        .slice(-256)
        .map(patchStatusOf),
    });
    const accepted = acceptAnswer(answer, raw, enrollment, before.lastAnswer, new Date());
    for (const a of accepted.adopted)
      ctx.log(
        `server key rotated: now trusting ${keyFingerprint(a.publicKey)} (announced by ${keyFingerprint(a.previous)} at ${a.at})`,
      );
    return { ok: true, answer, key: accepted.key };
  } catch (e) {
    const d = toDiagnostic(e);
    updateState(ctx.stateDir, (s) => {
      s.lastCheck = { at: now(), ok: false, error: d.message };
      s.failures += 1;
    });
    ctx.log(`check-in failed: ${d.code}: ${d.message}`);
    return { ok: false, error: d.message, code: d.code };
  }
}

/** Run one check-in and converge. Never throws for server trouble: that is `{ ok: false }`. */
export async function checkInOnce(ctx: AgentContext): Promise<CheckinOutcome> {
  const enrollment = requireEnrollment(loadState(ctx.stateDir), ctx.stateDir);
  const mode = ctx.kernel.mode ? await ctx.kernel.mode() : { mode: 'normal' as const, source: 'default' };
  if (mode.warning) ctx.log(`warning: ${mode.warning}`);
  if (mode.mode === 'no-refresh' || mode.mode === 'stop') {
    const error = `suture.mode=${mode.mode} (${mode.source}): no check-in`;
    ctx.log(error);
    return { ok: false, code: 'AGENT-MODE', error };
  }
  const { running, loaded } = await readKernel(ctx);
  const kernelId: KernelIdentity = { release: running.release, buildId: running.buildId };
  for (const n of reconcile(ctx.stateDir, kernelId, loaded).notes) ctx.log(n);

  const before = updateState(ctx.stateDir, (s) => {
    s.kernel = kernelId;
    s.kernelSupported = running.livepatchSupported;
  });
  const client = new ServerClient(enrollment.server, enrollment.credential);
  const got = await fetchAnswer(ctx, client, kernelId, before, enrollment);
  if (!got.ok) return got;
  const resp = got.answer;
  const reworded: string[] = [];
  const trusted = updateState(ctx.stateDir, (s) => {
    s.lastCheck = { at: now(), ok: true };
    s.lastSuccessAt = s.lastCheck.at;
    s.failures = 0;
    s.intervalSeconds = resp.nextCheckinSeconds;
    s.lastAnswer = { sequence: resp.sequence, issuedAt: resp.issuedAt };
    if (s.enrollment) {
      s.enrollment.tier = resp.tier;
      s.enrollment.serverPublicKey = got.key;
    }
    s.offered = resp.offered.map((o) => ({
      patchId: o.patchId,
      name: o.manifest.name,
      version: o.manifest.version,
      replace: o.manifest.replace,
    }));
    s.kernelSupport = resp.kernelSupport
      ? { kernel: kernelId, support: resp.kernelSupport, patchedKernels: resp.patchedKernels ?? [] }
      : null;
    reworded.push(...rewordKernelChange(s, kernelId));
  }).enrollment as Enrollment;
  for (const n of reworded) ctx.log(n);

  const result = {
    applied: [] as string[],
    reverted: [] as string[],
    refused: [] as string[],
    failed: [] as string[],
  };
  const bad = await syncBadPatches(ctx, kernelId, resp.offered);
  if (mode.mode === 'no-apply') {
    ctx.log(`suture.mode=no-apply (${mode.source}): nothing is applied or reverted`);
    await deliverReports(ctx, client);
    return { ok: true, intervalSeconds: resp.nextCheckinSeconds, ...result };
  }
  if (!running.livepatchSupported) {
    if (resp.offered.length)
      ctx.log(`kernel ${running.release} has no livepatch support: nothing can be applied`);
    return { ok: true, intervalSeconds: resp.nextCheckinSeconds, ...result };
  }
  for (const r of resp.revoked) {
    if (await revertRevoked(ctx, kernelId, r)) result.reverted.push(r.name);
  }
  const revokedIds = new Set(resp.revoked.map((r) => r.patchId));
  let covered = false;
  for (const offer of resp.offered) {
    if (revokedIds.has(offer.patchId) || covered || bad.has(offer.manifest.module.name)) continue;
    const outcome = await converge(ctx, trusted, running, offer, client, resp);
    if (outcome === 'applied' || outcome === 'present') {
      if (outcome === 'applied') result.applied.push(offer.manifest.name);
      if (offer.manifest.replace) covered = true;
    } else if (outcome === 'refused') result.refused.push(offer.manifest.name);
    else if (outcome === 'failed') result.failed.push(offer.manifest.name);
  }

  // Cumulative patches may have replaced others: align the records with the kernel once more.
  const after = await ctx.kernel.listLivepatches().catch(() => loaded);
  const notes: string[] = [];
  const settled = updateState(ctx.stateDir, (s) =>
    syncRecords(s, kernelId, new Map(after.map((l) => [l.name, l])), notes),
  );
  for (const n of notes) ctx.log(n);
  const pruned = pruneModules(ctx.stateDir, neededModules(settled, resp));
  if (pruned.length) ctx.log(`removed ${pruned.length} cached module(s) no longer needed`);
  await deliverReports(ctx, client);
  return { ok: true, intervalSeconds: resp.nextCheckinSeconds, ...result };
}

async function deliverReports(ctx: AgentContext, client: ServerClient): Promise<void> {
  try {
    await flushOutbox(ctx.stateDir, client, ctx.log);
  } catch (e) {
    ctx.log(`reports not delivered yet (kept for the next check-in): ${toDiagnostic(e).message}`);
  }
}

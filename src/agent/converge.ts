/*
 * Converging on one offered patch: bring it into the kernel, replacing an older version of it.
 *
 * What is loaded is judged by the agent's own records (the patch id and sha256 it recorded applying),
 * never by a module name alone: a livepatch of the offer's module name that this agent did not apply
 * (loaded by hand) is not taken for the offer, and is not touched (AGENT-MODULE-NAME-TAKEN, retried
 * once the name is free). Versions compare per lineage (manifest/lineage.ts): an offer older than what
 * this agent applied in its lineage is never installed, nor one equal to an applied one.
 *
 * An upgrade (this agent applied v1 of the lineage, v2 is offered) is verified and downloaded first,
 * then:
 *   - v2 under another module name, cumulative (`replace`): loaded, the kernel replaces v1 atomically;
 *   - v2 under another module name, not cumulative: loaded on top of v1, then v1 is reverted (no gap);
 *   - v2 under the same module name (the kernel loads a module name once): v1 is disabled and unloaded,
 *     then v2 is loaded; if v2 fails, v1 is put back from the cache.
 * The server hears "v2 applied" only from the report sent after the kernel has it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { toDiagnostic } from '../diagnostic.js';
import { compareVersions, lineageKey } from '../manifest/lineage.js';
import type { CheckinResponse, KernelIdentity, OfferedPatch } from '../manifest/protocol.js';
import type { AgentContext } from './context.js';
import type { RunningKernel } from './kernel-port.js';
import { moduleStorePath, modulesDir } from './module-cache.js';
import { applyJournaled, revertJournaled } from './operation.js';
import { queueReport } from './report.js';
import type { ServerClient } from './server-client.js';
import { type AgentState, loadState, type PatchRecord, updateState } from './state.js';
import { verifyOffer } from './verify.js';

/** apply attempts for a patch that failed or stalled, before the agent waits for a new version */
export const MAX_ATTEMPTS = 3;
/**
 * refusals worth trying again, at most MAX_ATTEMPTS times: caused by the bytes received (not by the
 * signed manifest), or an old version that could not be disabled for an upgrade yet
 */
const RETRIED_CODES = new Set([
  'AGENT-MODULE-HASH-MISMATCH',
  'AGENT-MODULE-TOO-LARGE',
  'AGENT-UPGRADE-BLOCKED',
]);
/** refusals that depend on the machine, not the patch: looked at again at every check-in */
const MACHINE_CODES = new Set(['AGENT-MODULE-NAME-TAKEN']);

export type Convergence = 'present' | 'applied' | 'refused' | 'failed' | 'skipped' | 'superseded';

function now(): string {
  return new Date().toISOString();
}

const isApplied = (r: PatchRecord) => r.outcome === 'applied' || r.outcome === 'transition';

/** The patch of this lineage, or holding this module name, that this agent has applied (not `offer`). */
function previousOf(state: AgentState, offer: OfferedPatch): PatchRecord | undefined {
  const m = offer.manifest;
  return Object.values(state.patches).find(
    (r) =>
      r.patchId !== offer.patchId &&
      isApplied(r) &&
      state.intent?.patchId !== r.patchId &&
      (r.name === m.name || r.moduleName === m.module.name),
  );
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function recordRefusal(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  offer: OfferedPatch,
  code: string,
  message: string,
  attempts: number,
): void {
  const m = offer.manifest;
  ctx.log(`refused ${m.name} ${m.version}: ${code}: ${message}`);
  updateState(ctx.stateDir, (s) => {
    const prior = s.patches[offer.patchId];
    const same = prior?.outcome === 'refused' && prior.code === code && prior.sha256 === offer.sha256;
    const r: PatchRecord = {
      patchId: offer.patchId,
      name: m.name,
      moduleName: m.module.name,
      version: m.version,
      sha256: offer.sha256,
      outcome: 'refused',
      code,
      reason: `${code}: ${message}`,
      attempts,
      at: now(),
    };
    s.patches[offer.patchId] = r;
    if (!same || RETRIED_CODES.has(code)) queueReport(s, kernelId, r, 'apply');
  });
}

/** Whether an earlier outcome for the same bytes says: do not try again. */
function exhausted(rec: PatchRecord | undefined, offer: OfferedPatch): boolean {
  if (rec?.outcome === 'bad') return true; // the crash-loop guard's verdict is final
  if (!rec || rec.sha256 !== offer.sha256) return false;
  if (rec.outcome === 'refused') {
    // A signature or kernel mismatch is in the signed data: it will not change. Bytes damaged in
    // transit might: those are fetched again, up to MAX_ATTEMPTS times.
    if (MACHINE_CODES.has(rec.code ?? '')) return false;
    return !RETRIED_CODES.has(rec.code ?? '') || rec.attempts >= MAX_ATTEMPTS;
  }
  return (rec.outcome === 'failed' || rec.outcome === 'stalled') && rec.attempts >= MAX_ATTEMPTS;
}

/** What the records and the kernel say before anything is verified: go on (with what), or stop. */
type Judgement =
  | { go: false; outcome: Convergence }
  | { go: true; previous: PatchRecord | undefined; sameName: boolean; attempts: number };

async function judge(ctx: AgentContext, kernelId: KernelIdentity, offer: OfferedPatch): Promise<Judgement> {
  const m = offer.manifest;
  const state = loadState(ctx.stateDir);
  const rec = state.patches[offer.patchId];
  const stop = (outcome: Convergence): Judgement => ({ go: false, outcome });
  if (state.intent?.patchId === offer.patchId) return stop('skipped'); // the kernel is still finishing it
  const lp = (await ctx.kernel.listLivepatches()).find((l) => l.name === m.module.name);
  if (rec && isApplied(rec) && lp) return stop(lp.enabled ? 'present' : 'skipped');

  const highest = state.lineage[lineageKey(m)];
  const previous = previousOf(state, offer);
  if (highest !== undefined && compareVersions(m.version, highest) < 0) {
    ctx.log(
      `not installing ${m.name} ${m.version}: version ${highest} of it was applied here (no downgrade)`,
    );
    return stop('superseded');
  }
  if (previous && previous.name === m.name && compareVersions(m.version, previous.version) <= 0) {
    ctx.log(`not installing ${m.name} ${m.version}: ${previous.version} is applied`);
    return stop('superseded');
  }
  const attempts = rec?.sha256 === offer.sha256 ? rec.attempts : 0;
  const sameName = previous?.moduleName === m.module.name;
  if ((lp && !sameName) || (previous && previous.name !== m.name)) {
    recordRefusal(
      ctx,
      kernelId,
      offer,
      'AGENT-MODULE-NAME-TAKEN',
      `a livepatch named ${m.module.name} is loaded that this agent did not apply as ${m.name}; it is left alone`,
      attempts,
    );
    return stop('refused');
  }
  if (exhausted(rec, offer)) return stop('skipped');
  return { go: true, previous, sameName, attempts };
}

/** Verify the offer, then have its module in the cache (downloaded unless already there). */
async function fetchVerified(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  trustedKey: string,
  running: RunningKernel,
  offer: OfferedPatch,
  client: ServerClient,
  attempts: number,
): Promise<{ file: string } | { outcome: Convergence }> {
  const m = offer.manifest;
  const dest = moduleStorePath(ctx.stateDir, offer.sha256);
  try {
    verifyOffer(offer, trustedKey, running);
    mkdirSync(modulesDir(ctx.stateDir), { recursive: true, mode: 0o700 });
    if (!existsSync(dest) || sha256File(dest) !== offer.sha256) {
      ctx.log(`downloading ${m.name} ${m.version} (${offer.size} bytes)`);
      await client.download(offer, dest);
    }
    return { file: dest };
  } catch (e) {
    const d = toDiagnostic(e);
    if (['AGENT-SERVER-UNREACHABLE', 'AGENT-SERVER-TLS', 'AGENT-SERVER-REFUSED'].includes(d.code)) {
      ctx.log(`download of ${m.name} failed, retrying at the next check-in: ${d.message}`);
      return { outcome: 'skipped' };
    }
    recordRefusal(ctx, kernelId, offer, d.code, d.message, attempts + (RETRIED_CODES.has(d.code) ? 1 : 0));
    return { outcome: 'refused' };
  }
}

/** Bring one offered patch into the kernel, unless it is there already or must not be. */
export async function converge(
  ctx: AgentContext,
  enrollment: { serverPublicKey: string },
  running: RunningKernel,
  offer: OfferedPatch,
  client: ServerClient,
  answer: CheckinResponse,
): Promise<Convergence> {
  const m = offer.manifest;
  const kernelId: KernelIdentity = { release: running.release, buildId: running.buildId };
  const j = await judge(ctx, kernelId, offer);
  if (!j.go) return j.outcome;
  const { previous, sameName, attempts } = j;
  // Verify before anything touches the disk or the kernel.
  const got = await fetchVerified(
    ctx,
    kernelId,
    enrollment.serverPublicKey,
    running,
    offer,
    client,
    attempts,
  );
  if ('outcome' in got) return got.outcome;

  const replacedBy = `replaced by ${m.name} ${m.version}`;
  if (previous && sameName) {
    // The kernel loads a module name once: the old version has to go before the new one can load.
    const out = await revertJournaled(ctx, kernelId, previous, replacedBy);
    if (!out.result.ok) {
      const why = `${out.result.code}: ${out.result.reason}`;
      const msg = `${previous.name} ${previous.version} could not be disabled first: ${why}`;
      recordRefusal(ctx, kernelId, offer, 'AGENT-UPGRADE-BLOCKED', msg, attempts + 1);
      return 'failed';
    }
  }
  const target = { patchId: offer.patchId, manifest: m, sha256: offer.sha256, module: got.file, attempts };
  const { result, record } = await applyJournaled(ctx, kernelId, target);
  if (!result.ok) {
    if (previous && sameName) await restore(ctx, kernelId, previous, answer);
    return record.outcome === 'transition' ? 'present' : 'failed';
  }
  updateState(ctx.stateDir, (s) => {
    const key = lineageKey(m);
    const top = s.lineage[key];
    if (top === undefined || compareVersions(m.version, top) > 0) s.lineage[key] = m.version;
  });
  if (previous && !sameName && !m.replace) await revertJournaled(ctx, kernelId, previous, replacedBy);
  return 'applied';
}

/** Put the previous version back after a failed same-name upgrade, from the cache, if it is offered. */
async function restore(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  previous: PatchRecord,
  answer: CheckinResponse,
): Promise<void> {
  const offer = answer.offered.find((o) => o.patchId === previous.patchId);
  const file = moduleStorePath(ctx.stateDir, previous.sha256);
  if (!offer || !existsSync(file) || sha256File(file) !== previous.sha256) {
    ctx.log(`${previous.name} ${previous.version} cannot be put back: it is no longer offered or cached`);
    return;
  }
  await applyJournaled(ctx, kernelId, {
    patchId: previous.patchId,
    manifest: offer.manifest,
    sha256: previous.sha256,
    module: file,
    attempts: 0,
  });
}

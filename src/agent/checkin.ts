/*
 * One check-in: tell the server what this machine runs, then converge to what it offers.
 *
 *   1. read the kernel's truth (release, build id, loaded livepatches) and settle the intent journal;
 *   2. POST /v1/checkin with every patch the agent knows about — on failure record why (status shows
 *      it) and let the daemon back off; applied patches stay as they are;
 *   3. revert what the server revoked (journal, host layer, record, report);
 *   4. for each offered patch, newest first, not yet in the kernel: verify the signature with the pinned
 *      key and the kernel identity, download and check the module's sha256, journal the intent, apply
 *      through the host layer, record the outcome and report it. Once a cumulative patch is applied the
 *      older offers are covered by it and skipped. A patch refused for its signed content (signature,
 *      kernel) is reported once and not retried; one whose downloaded bytes did not match, or that
 *      failed or stalled in the kernel, is retried at later check-ins, at most MAX_ATTEMPTS times;
 *   5. flush the outbox of reports.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError, toDiagnostic } from '../diagnostic.js';
import type { CheckinResponse, KernelIdentity, OfferedPatch, RevokedPatch } from '../manifest/protocol.js';
import { VERSION } from '../version.js';
import { reconcile, syncRecords } from './journal.js';
import type { KernelOpResult, KernelPort, LoadedLivepatch, RunningKernel } from './kernel-port.js';
import { flushOutbox, patchStatusOf, queueReport } from './report.js';
import { ServerClient } from './server-client.js';
import { type AgentState, type Enrollment, loadState, type PatchRecord, updateState } from './state.js';
import { verifyOffer } from './verify.js';

export const AGENT_VERSION = VERSION;
/** apply attempts for a patch that failed or stalled, before the agent waits for a new version */
export const MAX_ATTEMPTS = 3;
/** refusals caused by the bytes received, not by the signed manifest: worth downloading again */
const TRANSIT_CODES = new Set(['AGENT-MODULE-HASH-MISMATCH', 'AGENT-MODULE-TOO-LARGE']);

export interface AgentContext {
  stateDir: string;
  kernel: KernelPort;
  hostname: string;
  /** how long the host layer waits for a transition before it gives up */
  applyTimeoutMs: number;
  log: (line: string) => void;
}

export type CheckinOutcome =
  | {
      ok: true;
      intervalSeconds: number;
      applied: string[];
      reverted: string[];
      refused: string[];
      failed: string[];
    }
  | { ok: false; error: string };

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

export function moduleStorePath(stateDir: string, sha256: string): string {
  return join(stateDir, 'modules', `${sha256}.ko`);
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function readKernel(ctx: AgentContext): Promise<{ running: RunningKernel; loaded: LoadedLivepatch[] }> {
  const running = await ctx.kernel.runningKernel();
  const loaded = running.livepatchSupported ? await ctx.kernel.listLivepatches() : [];
  return { running, loaded };
}

/** Run one check-in and converge. Never throws for server trouble: that is `{ ok: false }`. */
export async function checkInOnce(ctx: AgentContext): Promise<CheckinOutcome> {
  const enrollment = requireEnrollment(loadState(ctx.stateDir), ctx.stateDir);
  const { running, loaded } = await readKernel(ctx);
  const kernelId: KernelIdentity = { release: running.release, buildId: running.buildId };
  for (const n of reconcile(ctx.stateDir, kernelId, loaded).notes) ctx.log(n);

  const before = updateState(ctx.stateDir, (s) => {
    s.kernel = kernelId;
    s.kernelSupported = running.livepatchSupported;
  });
  const client = new ServerClient(enrollment.server, enrollment.credential);
  let resp: CheckinResponse;
  try {
    resp = await client.checkin({
      kernel: kernelId,
      hostname: ctx.hostname,
      agentVersion: AGENT_VERSION,
      patches: Object.values(before.patches)
        .sort((a, b) => (a.at < b.at ? -1 : 1))
        .slice(-256)
        .map(patchStatusOf),
    });
  } catch (e) {
    const error = toDiagnostic(e).message;
    updateState(ctx.stateDir, (s) => {
      s.lastCheck = { at: now(), ok: false, error };
      s.failures += 1;
    });
    ctx.log(`check-in failed: ${error}`);
    return { ok: false, error };
  }
  updateState(ctx.stateDir, (s) => {
    s.lastCheck = { at: now(), ok: true };
    s.lastSuccessAt = s.lastCheck.at;
    s.failures = 0;
    s.intervalSeconds = resp.nextCheckinSeconds;
    if (s.enrollment) s.enrollment.tier = resp.tier;
    s.offered = resp.offered.map((o) => ({
      patchId: o.patchId,
      name: o.manifest.name,
      version: o.manifest.version,
      replace: o.manifest.replace,
    }));
  });

  const result = {
    applied: [] as string[],
    reverted: [] as string[],
    refused: [] as string[],
    failed: [] as string[],
  };
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
    if (revokedIds.has(offer.patchId) || covered) continue;
    const outcome = await converge(ctx, enrollment, running, offer, client);
    if (outcome === 'applied' || outcome === 'present') {
      if (outcome === 'applied') result.applied.push(offer.manifest.name);
      if (offer.manifest.replace) covered = true;
    } else if (outcome === 'refused') result.refused.push(offer.manifest.name);
    else if (outcome === 'failed') result.failed.push(offer.manifest.name);
  }

  // Cumulative patches may have replaced others: align the records with the kernel once more.
  const after = await ctx.kernel.listLivepatches().catch(() => loaded);
  const notes: string[] = [];
  updateState(ctx.stateDir, (s) => syncRecords(s, kernelId, new Map(after.map((l) => [l.name, l])), notes));
  for (const n of notes) ctx.log(n);
  try {
    await flushOutbox(ctx.stateDir, client, ctx.log);
  } catch (e) {
    ctx.log(`reports not delivered yet (kept for the next check-in): ${toDiagnostic(e).message}`);
  }
  return { ok: true, intervalSeconds: resp.nextCheckinSeconds, ...result };
}

type Convergence = 'present' | 'applied' | 'refused' | 'failed' | 'skipped';

/** Bring one offered patch into the kernel, unless it is there already or must not be retried. */
async function converge(
  ctx: AgentContext,
  enrollment: Enrollment,
  running: RunningKernel,
  offer: OfferedPatch,
  client: ServerClient,
): Promise<Convergence> {
  const m = offer.manifest;
  const kernelId: KernelIdentity = { release: running.release, buildId: running.buildId };
  const loaded = await ctx.kernel.listLivepatches();
  const lp = loaded.find((l) => l.name === m.module.name);
  const state = loadState(ctx.stateDir);
  const rec = state.patches[offer.patchId];
  if (state.intent?.patchId === offer.patchId) return 'skipped'; // the kernel is still finishing it
  if (lp?.enabled && (rec === undefined || rec.sha256 === offer.sha256)) {
    if (!rec || (rec.outcome !== 'applied' && rec.outcome !== 'transition')) {
      // Loaded but not recorded as ours-and-applied (e.g. `suture apply` by hand): the kernel's truth wins.
      updateState(ctx.stateDir, (s) => {
        const r: PatchRecord = {
          patchId: offer.patchId,
          name: m.name,
          moduleName: m.module.name,
          version: m.version,
          sha256: offer.sha256,
          outcome: lp.transition ? 'transition' : 'applied',
          attempts: rec?.attempts ?? 0,
          at: now(),
        };
        s.patches[offer.patchId] = r;
        queueReport(s, kernelId, r, 'apply');
      });
    }
    return 'present';
  }
  if (rec && rec.sha256 === offer.sha256) {
    if (rec.outcome === 'refused') {
      // A signature or kernel mismatch is in the signed data: it will not change. Bytes damaged in
      // transit might: those are fetched again, up to MAX_ATTEMPTS times.
      if (!TRANSIT_CODES.has(rec.code ?? '') || rec.attempts >= MAX_ATTEMPTS) return 'skipped';
    }
    if ((rec.outcome === 'failed' || rec.outcome === 'stalled') && rec.attempts >= MAX_ATTEMPTS)
      return 'skipped';
  }

  // Verify before anything touches the disk or the kernel.
  const dest = moduleStorePath(ctx.stateDir, offer.sha256);
  try {
    verifyOffer(offer, enrollment.serverPublicKey, running);
    mkdirSync(join(ctx.stateDir, 'modules'), { recursive: true, mode: 0o700 });
    if (!existsSync(dest) || sha256File(dest) !== offer.sha256) {
      ctx.log(`downloading ${m.name} ${m.version} (${offer.size} bytes)`);
      await client.download(offer, dest);
    }
  } catch (e) {
    const d = toDiagnostic(e);
    if (
      d.code === 'AGENT-SERVER-UNREACHABLE' ||
      d.code === 'AGENT-SERVER-TLS' ||
      d.code === 'AGENT-SERVER-REFUSED'
    ) {
      ctx.log(`download of ${m.name} failed, retrying at the next check-in: ${d.message}`);
      return 'skipped';
    }
    ctx.log(`refused ${m.name} ${m.version}: ${d.code}: ${d.message}`);
    updateState(ctx.stateDir, (s) => {
      const r: PatchRecord = {
        patchId: offer.patchId,
        name: m.name,
        moduleName: m.module.name,
        version: m.version,
        sha256: offer.sha256,
        outcome: 'refused',
        code: d.code,
        reason: `${d.code}: ${d.message}`,
        attempts: (rec?.sha256 === offer.sha256 ? rec.attempts : 0) + (TRANSIT_CODES.has(d.code) ? 1 : 0),
        at: now(),
      };
      s.patches[offer.patchId] = r;
      queueReport(s, kernelId, r, 'apply');
    });
    return 'refused';
  }

  // A different version of the same module is loaded: it has to go before this one can load.
  if (lp && rec && rec.sha256 !== offer.sha256) {
    ctx.log(`${m.module.name} is loaded in another version; reverting it first`);
    const r = await ctx.kernel.revert({ moduleName: m.module.name, timeoutMs: ctx.applyTimeoutMs });
    if (!r.ok) ctx.log(`revert of the old ${m.module.name} failed: ${r.reason}`);
  }

  updateState(ctx.stateDir, (s) => {
    s.intent = {
      op: 'apply',
      patchId: offer.patchId,
      name: m.name,
      moduleName: m.module.name,
      version: m.version,
      sha256: offer.sha256,
      startedAt: now(),
    };
  });
  ctx.log(`applying ${m.name} ${m.version} (${m.module.name})`);
  let result: KernelOpResult;
  try {
    result = await ctx.kernel.apply({ module: dest, manifest: m, timeoutMs: ctx.applyTimeoutMs });
  } catch (e) {
    const d = toDiagnostic(e);
    result = { ok: false, code: d.code, reason: d.message, rolledBack: true };
  }
  const record: PatchRecord = {
    patchId: offer.patchId,
    name: m.name,
    moduleName: m.module.name,
    version: m.version,
    sha256: offer.sha256,
    outcome: 'applied',
    attempts: (rec?.sha256 === offer.sha256 ? rec.attempts : 0) + 1,
    at: now(),
  };
  if (!result.ok) {
    record.code = result.code;
    record.reason = result.reason;
    if (result.stall) {
      record.transition = {
        seconds: result.stall.seconds,
        stalled: true,
        blockingTasks: result.stall.tasks.slice(0, 256).map((t) => ({
          pid: t.pid,
          comm: t.comm.slice(0, 64),
          stack: t.stack.slice(0, 64).map((l) => l.slice(0, 512)),
        })),
      };
      record.outcome = result.rolledBack ? 'stalled' : 'transition';
    } else {
      record.outcome = 'failed';
    }
  }
  updateState(ctx.stateDir, (s) => {
    s.patches[offer.patchId] = record;
    s.intent = null;
    queueReport(s, kernelId, record, 'apply');
  });
  if (result.ok) {
    ctx.log(`applied ${m.name} ${m.version} in ${result.seconds.toFixed(1)} s`);
    return 'applied';
  }
  ctx.log(`apply of ${m.name} ${m.version} failed: ${result.code}: ${result.reason}`);
  return record.outcome === 'transition' ? 'present' : 'failed';
}

/** Revert a revoked patch if the kernel has it; true when something was reverted. */
async function revertRevoked(ctx: AgentContext, kernelId: KernelIdentity, r: RevokedPatch): Promise<boolean> {
  const loaded = await ctx.kernel.listLivepatches();
  const lp = loaded.find((l) => l.name === r.moduleName);
  const state = loadState(ctx.stateDir);
  const rec = state.patches[r.patchId];
  if (!lp) {
    if (rec && rec.outcome !== 'reverted' && rec.outcome !== 'refused') {
      updateState(ctx.stateDir, (s) => {
        const x = s.patches[r.patchId];
        if (!x) return;
        x.outcome = 'reverted';
        x.reason = 'revoked by the server';
        delete x.transition;
        x.at = now();
        queueReport(s, kernelId, x, 'revert');
      });
    }
    return false;
  }
  // Only revert modules this agent applied (or that carry the revoked patch's module name and we know).
  if (!rec && state.intent?.patchId !== r.patchId) {
    ctx.log(`${r.moduleName} is loaded but was not applied by this agent; leaving it to the operator`);
    return false;
  }
  const base: PatchRecord = rec ?? {
    patchId: r.patchId,
    name: r.name,
    moduleName: r.moduleName,
    version: '?',
    sha256: '',
    outcome: 'applied',
    attempts: 0,
    at: now(),
  };
  updateState(ctx.stateDir, (s) => {
    s.intent = {
      op: 'revert',
      patchId: r.patchId,
      name: r.name,
      moduleName: r.moduleName,
      version: base.version,
      sha256: base.sha256,
      startedAt: now(),
    };
  });
  ctx.log(`reverting revoked ${r.name} (${r.moduleName})`);
  let result: KernelOpResult;
  try {
    result = await ctx.kernel.revert({ moduleName: r.moduleName, timeoutMs: ctx.applyTimeoutMs });
  } catch (e) {
    const d = toDiagnostic(e);
    result = { ok: false, code: d.code, reason: d.message, rolledBack: true };
  }
  const record: PatchRecord = { ...base, at: now() };
  delete record.transition;
  if (result.ok) {
    record.outcome = 'reverted';
    record.reason = 'revoked by the server';
    delete record.code;
  } else {
    // Still loaded: keep it recorded as applied, with why the revert failed (retried next check-in).
    record.outcome = 'applied';
    record.code = result.code;
    record.reason = `revert failed: ${result.reason}`;
    if (result.stall) {
      record.outcome = 'transition';
      record.transition = {
        seconds: result.stall.seconds,
        stalled: true,
        blockingTasks: result.stall.tasks.map((t) => ({
          pid: t.pid,
          comm: t.comm.slice(0, 64),
          stack: t.stack.slice(0, 64),
        })),
      };
    }
  }
  updateState(ctx.stateDir, (s) => {
    s.patches[r.patchId] = record;
    s.intent = null;
    queueReport(s, kernelId, record, 'revert');
  });
  ctx.log(result.ok ? `reverted ${r.name}` : `revert of ${r.name} failed: ${result.code}: ${result.reason}`);
  return result.ok;
}

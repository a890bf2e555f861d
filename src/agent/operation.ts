/*
 * One journaled kernel operation: the intent is written before the kernel is touched, the outcome
 * replaces it after, each in one atomic write (journal.ts settles an intent left by a crash).
 *
 * `applyJournaled` loads a verified module and records the patch applied, in transition, stalled or
 * failed; `revertJournaled` disables and unloads a livepatch this agent applied and records it
 * reverted with the reason given (revoked, replaced by a newer version), or still applied with why the
 * revert failed. Both queue the report. The host layer reports failures as values; anything it throws
 * becomes such a value too (it reverses what it started).
 */
import { toDiagnostic } from '../diagnostic.js';
import type { Manifest } from '../manifest/manifest.js';
import type { KernelIdentity, Transition } from '../manifest/protocol.js';
import type { AgentContext } from './context.js';
import type { KernelOpResult } from './kernel-port.js';
import { queueReport } from './report.js';
import { type PatchRecord, updateState } from './state.js';

function now(): string {
  return new Date().toISOString();
}

async function runKernelOp(op: () => Promise<KernelOpResult>): Promise<KernelOpResult> {
  try {
    return await op();
  } catch (e) {
    const d = toDiagnostic(e);
    return { ok: false, code: d.code, reason: d.message, rolledBack: true };
  }
}

/** The stall of a failed operation as a record's transition, or undefined. */
function stallTransition(result: KernelOpResult): Transition | undefined {
  if (result.ok || !result.stall) return undefined;
  return {
    seconds: result.stall.seconds,
    stalled: true,
    blockingTasks: result.stall.tasks.slice(0, 256).map((t) => ({
      pid: t.pid,
      comm: t.comm.slice(0, 64),
      stack: t.stack.slice(0, 64).map((l) => l.slice(0, 512)),
    })),
  };
}

export interface ApplyTarget {
  patchId: string;
  manifest: Manifest;
  sha256: string;
  /** the verified module in the cache */
  module: string;
  /** attempts recorded so far for these bytes */
  attempts: number;
}

export async function applyJournaled(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  t: ApplyTarget,
): Promise<{ result: KernelOpResult; record: PatchRecord }> {
  const m = t.manifest;
  updateState(ctx.stateDir, (s) => {
    s.intent = {
      op: 'apply',
      patchId: t.patchId,
      name: m.name,
      moduleName: m.module.name,
      version: m.version,
      sha256: t.sha256,
      startedAt: now(),
    };
  });
  ctx.log(`applying ${m.name} ${m.version} (${m.module.name})`);
  const result = await runKernelOp(() =>
    ctx.kernel.apply({ module: t.module, manifest: m, timeoutMs: ctx.applyTimeoutMs }),
  );
  const record: PatchRecord = {
    patchId: t.patchId,
    name: m.name,
    moduleName: m.module.name,
    version: m.version,
    sha256: t.sha256,
    outcome: 'applied',
    attempts: t.attempts + 1,
    kernel: { release: m.kernel.release, buildId: m.kernel.buildId },
    at: now(),
  };
  if (!result.ok) {
    record.code = result.code;
    record.reason = result.reason;
    const stall = stallTransition(result);
    if (result.bad) {
      record.outcome = 'bad';
      record.badReason = result.bad.reason;
      record.kernelLog = result.bad.kernelLog;
    } else if (stall) {
      record.transition = stall;
      record.outcome = result.rolledBack ? 'stalled' : 'transition';
    } else {
      record.outcome = 'failed';
    }
  }
  updateState(ctx.stateDir, (s) => {
    s.patches[t.patchId] = record;
    s.intent = null;
    queueReport(s, kernelId, record, 'apply');
  });
  if (result.ok) ctx.log(`applied ${m.name} ${m.version} in ${result.seconds.toFixed(1)} s`);
  else ctx.log(`apply of ${m.name} ${m.version} failed: ${result.code}: ${result.reason}`);
  return { result, record };
}

/** Revert a livepatch this agent recorded applying as `base`; the module name is the record's own. */
export async function revertJournaled(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  base: PatchRecord,
  reason: string,
): Promise<{ result: KernelOpResult; record: PatchRecord }> {
  const moduleName = base.moduleName;
  updateState(ctx.stateDir, (s) => {
    s.intent = {
      op: 'revert',
      patchId: base.patchId,
      name: base.name,
      moduleName,
      version: base.version,
      sha256: base.sha256,
      startedAt: now(),
    };
  });
  ctx.log(`reverting ${base.name} ${base.version} (${moduleName}): ${reason}`);
  const result = await runKernelOp(() => ctx.kernel.revert({ moduleName, timeoutMs: ctx.applyTimeoutMs }));
  const record: PatchRecord = { ...base, at: now() };
  delete record.transition;
  if (result.ok) {
    record.outcome = 'reverted';
    record.reason = reason;
    delete record.code;
  } else {
    // Still loaded: keep it recorded as applied, with why the revert failed (retried next check-in).
    record.outcome = 'applied';
    record.code = result.code;
    record.reason = `revert failed: ${result.reason}`;
    const stall = stallTransition(result);
    if (stall) {
      record.outcome = 'transition';
      record.transition = stall;
    }
  }
  updateState(ctx.stateDir, (s) => {
    s.patches[base.patchId] = record;
    s.intent = null;
    queueReport(s, kernelId, record, 'revert');
  });
  ctx.log(
    result.ok
      ? `reverted ${base.name} ${base.version}`
      : `revert of ${base.name} failed: ${result.code}: ${result.reason}`,
  );
  return { result, record };
}

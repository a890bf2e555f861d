/*
 * Patches the host's crash-loop guard marked bad (host/guard.ts), in the agent's records and reports.
 *
 * The guard marks by module name, on the host, whoever loaded the patch (the agent, `suture apply`, the
 * boot unit after a reboot). At every check-in the agent reads the host's marks and turns each record
 * or offer with that module name into outcome `bad` — reported once through the outbox (status `bad`
 * with reason and kernel log, see manifest/protocol.ts) and carried in every later check-in — and the
 * check-in then never converges to it, even while the server keeps offering it. A record the agent
 * reverted (a revoke) is left as reverted.
 */
import type { KernelIdentity, OfferedPatch } from '../manifest/protocol.js';
import type { AgentContext } from './context.js';
import type { BadLivepatch } from './kernel-port.js';
import { queueReport } from './report.js';
import { type AgentState, type PatchRecord, updateState } from './state.js';

function markRecord(s: AgentState, kernel: KernelIdentity, rec: PatchRecord, bad: BadLivepatch): boolean {
  if (rec.outcome === 'bad' || rec.outcome === 'reverted') return false;
  rec.outcome = 'bad';
  rec.badReason = bad.reason;
  rec.kernelLog = bad.kernelLog;
  rec.reason = `marked bad by the host's crash-loop guard: ${bad.reason}`;
  delete rec.transition;
  rec.at = new Date().toISOString();
  queueReport(s, kernel, rec, 'apply');
  return true;
}

/**
 * Bring the host's bad marks into the state; returns the module names that must not be applied.
 * Logs each patch newly found bad.
 */
export async function syncBadPatches(
  ctx: AgentContext,
  kernel: KernelIdentity,
  offered: OfferedPatch[],
): Promise<Set<string>> {
  const marks = ctx.kernel.badPatches ? await ctx.kernel.badPatches() : [];
  const names = new Set(marks.map((m) => m.moduleName));
  if (!marks.length) return names;
  const byName = new Map(marks.map((m) => [m.moduleName, m]));
  const newly: string[] = [];
  updateState(ctx.stateDir, (s) => {
    for (const rec of Object.values(s.patches)) {
      const bad = byName.get(rec.moduleName);
      if (bad && markRecord(s, kernel, rec, bad)) newly.push(`${rec.name} ${rec.version}`);
    }
    for (const o of offered) {
      const bad = byName.get(o.manifest.module.name);
      if (!bad || s.patches[o.patchId]) continue;
      const rec: PatchRecord = {
        patchId: o.patchId,
        name: o.manifest.name,
        moduleName: o.manifest.module.name,
        version: o.manifest.version,
        sha256: o.sha256,
        outcome: 'applied', // replaced by markRecord
        attempts: 0,
        at: '',
      };
      s.patches[o.patchId] = rec;
      markRecord(s, kernel, rec, bad);
      newly.push(`${rec.name} ${rec.version}`);
    }
  });
  for (const n of newly) ctx.log(`${n}: marked bad by the host's crash-loop guard; never applied again`);
  return names;
}

/*
 * Acting on a revocation: revert a revoked patch — only one this agent applied itself.
 *
 * The answer's revoke entry names a patch id. The agent looks that id up in its own records; the module
 * it unloads is the one it recorded applying under that id, never the module name the entry carries.
 * A revoke entry for a patch this agent never applied (a livepatch loaded by hand with `suture apply`,
 * or one a forged entry names) changes nothing: it is logged and left to the operator. A patch this
 * agent loaded that the host's guard then marked bad (a WARN after the load leaves it loaded) is
 * reverted like an applied one.
 */
import type { KernelIdentity, RevokedPatch } from '../manifest/protocol.js';
import type { AgentContext } from './context.js';
import { revertJournaled } from './operation.js';
import { queueReport } from './report.js';
import { loadState, type PatchRecord, updateState } from './state.js';

const REASON = 'revoked by the server';

/** Revert a revoked patch if this agent applied it and the kernel has it; true when reverted. */
export async function revertRevoked(
  ctx: AgentContext,
  kernelId: KernelIdentity,
  r: RevokedPatch,
): Promise<boolean> {
  const state = loadState(ctx.stateDir);
  const rec = state.patches[r.patchId];
  const loaded = await ctx.kernel.listLivepatches();
  if (!rec) {
    if (loaded.some((l) => l.name === r.moduleName))
      ctx.log(
        `revoked patch ${r.patchId} was never applied by this agent; ${r.moduleName} stays loaded (left to the operator)`,
      );
    return false;
  }
  // a patch the guard marked bad right after this agent loaded it stays loaded (host/guard.ts): a
  // revoke is the operator's call to unload it; a bad record made from an offer (attempts 0) was not ours
  const applied =
    rec.outcome === 'applied' || rec.outcome === 'transition' || (rec.outcome === 'bad' && rec.attempts > 0);
  const lp = loaded.find((l) => l.name === rec.moduleName);
  if (!applied || !lp) {
    if (rec.outcome !== 'reverted' && rec.outcome !== 'refused') {
      // not loaded now (skipped at boot: bad, or another kernel), maybe still stored for boot: a
      // revoked patch must not come back at a later boot (say, once its bad mark is cleared)
      if (applied) await ctx.kernel.forgetStored?.({ moduleName: rec.moduleName, sha256: rec.sha256 });
      updateState(ctx.stateDir, (s) => {
        const x = s.patches[r.patchId] as PatchRecord;
        x.outcome = 'reverted';
        x.reason = REASON;
        delete x.transition;
        x.at = new Date().toISOString();
        queueReport(s, kernelId, x, 'revert');
      });
    }
    return false;
  }
  return (await revertJournaled(ctx, kernelId, rec, REASON)).result.ok;
}

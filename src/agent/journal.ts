/*
 * The intent journal and reconciliation with the kernel's truth.
 *
 * Before the agent hands a patch to the kernel (apply or revert) it records the intent — "applying
 * patch X (sha256 S) as module M" — in the persisted state, and only after the host layer returns does
 * it record the outcome and clear the intent, in one atomic write. If the agent is killed in between
 * (kill -9, power cut), the journal says an operation may be half done, and the kernel says what really
 * happened: on the next start, before doing anything else, `reconcile` reads the livepatches the kernel
 * has loaded (/sys/kernel/livepatch, through the host layer) and settles the intent:
 *
 *   apply,  module loaded and enabled      → it happened: record `applied`, report it (never load again)
 *   apply,  module loaded, in transition   → it happened, the kernel is finishing: record `transition`
 *   apply,  module not loaded              → it never took effect: forget the intent, apply normally
 *   revert, module gone                    → it happened: record `reverted`, report it
 *   revert, still loaded                   → forget the intent; the revocation is acted on again
 *
 * It also keeps each patch record in step with the kernel: a patch recorded as applied that the kernel
 * no longer has (the machine rebooted, a cumulative patch replaced it, someone removed it by hand) is
 * recorded as reverted with that reason, and a finished transition becomes `applied`. When the machine
 * booted another kernel than the one the patch was applied on (its boot unit does not load it there),
 * the reason says `kernel-upgrade-required: built for …, this machine booted …` (code
 * AGENT-KERNEL-UPGRADE-REQUIRED), or `kernel-unsupported: …` when the server said it has no patch for
 * the booted kernel nor its flavour (kernel-change.ts); booted back into that kernel, with the patch loaded again by the boot
 * unit, the record is `applied` again. Each such change is queued as a report, so the server's view
 * converges too.
 */
import type { KernelIdentity } from '../manifest/protocol.js';
import { kernelChangeVerdict, leftByKernelChange } from './kernel-change.js';
import { type LoadedLivepatch, sameKernel } from './kernel-port.js';
import { queueReport } from './report.js';
import { type AgentState, loadState, type PatchRecord, saveState } from './state.js';

export interface Reconciliation {
  /** what was settled, in plain words (logged by the daemon) */
  notes: string[];
}

function now(): string {
  return new Date().toISOString();
}

/** Settle an interrupted operation and re-align patch records with the kernel. Saves the state. */
export function reconcile(
  stateDir: string,
  kernel: KernelIdentity,
  loaded: LoadedLivepatch[],
): Reconciliation {
  const state = loadState(stateDir);
  const notes: string[] = [];
  const byName = new Map(loaded.map((l) => [l.name, l]));
  const intent = state.intent;
  if (intent) {
    const lp = byName.get(intent.moduleName);
    const prior = state.patches[intent.patchId];
    const base: PatchRecord = prior ?? {
      patchId: intent.patchId,
      name: intent.name,
      moduleName: intent.moduleName,
      version: intent.version,
      sha256: intent.sha256,
      outcome: 'failed',
      attempts: 0,
      at: now(),
    };
    if (intent.op === 'apply') {
      if (lp?.enabled) {
        const rec: PatchRecord = {
          ...base,
          sha256: intent.sha256,
          version: intent.version,
          outcome: lp.transition ? 'transition' : 'applied',
          attempts: base.attempts + 1,
          at: now(),
        };
        delete rec.code;
        delete rec.reason;
        state.patches[intent.patchId] = rec;
        state.intent = null;
        queueReport(state, kernel, rec, 'apply');
        notes.push(
          `interrupted apply of ${intent.name}: the kernel has ${intent.moduleName} loaded${lp.transition ? ' (transition in progress)' : ''}, recorded as ${rec.outcome}`,
        );
      } else if (lp?.transition) {
        notes.push(
          `interrupted apply of ${intent.name}: ${intent.moduleName} is being disabled by the kernel; waiting`,
        );
      } else {
        state.intent = null;
        notes.push(
          `interrupted apply of ${intent.name}: the kernel never loaded ${intent.moduleName}; it will be applied normally`,
        );
      }
    } else {
      if (!lp) {
        const rec: PatchRecord = { ...base, outcome: 'reverted', reason: 'revoked by the server', at: now() };
        delete rec.code;
        delete rec.transition;
        state.patches[intent.patchId] = rec;
        state.intent = null;
        queueReport(state, kernel, rec, 'revert');
        notes.push(
          `interrupted revert of ${intent.name}: ${intent.moduleName} is gone from the kernel, recorded as reverted`,
        );
      } else if (lp.transition) {
        notes.push(`interrupted revert of ${intent.name}: the kernel is still in transition; waiting`);
      } else {
        state.intent = null;
        notes.push(
          `interrupted revert of ${intent.name}: ${intent.moduleName} is still loaded; the revert is retried`,
        );
      }
    }
  }
  syncRecords(state, kernel, byName, notes);
  saveState(stateDir, state);
  return { notes };
}

export { KERNEL_UPGRADE_REQUIRED, upgradeRequiredReason } from './kernel-change.js';

/** Left behind by a kernel change, and now the machine runs its kernel again with it loaded (boot unit). */
function backOnItsKernel(
  rec: PatchRecord,
  kernel: KernelIdentity,
  byName: Map<string, LoadedLivepatch>,
): boolean {
  if (!leftByKernelChange(rec) || !rec.kernel) return false;
  const lp = byName.get(rec.moduleName);
  return sameKernel(rec.kernel, kernel) && lp?.enabled === true && !lp.transition;
}

/** Re-align `applied`/`transition` records with what the kernel has loaded (no save). */
export function syncRecords(
  state: AgentState,
  kernel: KernelIdentity,
  byName: Map<string, LoadedLivepatch>,
  notes: string[],
): void {
  for (const rec of Object.values(state.patches)) {
    if (state.intent?.patchId === rec.patchId) continue;
    if (backOnItsKernel(rec, kernel, byName)) {
      rec.outcome = 'applied';
      delete rec.code;
      delete rec.reason;
      rec.at = now();
      queueReport(state, kernel, rec, 'apply');
      notes.push(`${rec.name}: back on ${kernel.release}, the boot unit loaded it again; applied`);
      continue;
    }
    if (rec.outcome !== 'applied' && rec.outcome !== 'transition') continue;
    const lp = byName.get(rec.moduleName);
    if (!lp?.enabled) {
      if (lp?.transition) continue; // being disabled right now: look again later
      rec.outcome = 'reverted';
      const other = rec.kernel && !sameKernel(rec.kernel, kernel) ? rec.kernel : undefined;
      if (other) {
        const v = kernelChangeVerdict(state, other, kernel);
        rec.code = v.code;
        rec.reason = v.reason;
      } else {
        rec.reason =
          'no longer loaded in the kernel (rebooted, replaced by a cumulative patch, or removed by hand)';
      }
      delete rec.transition;
      rec.at = now();
      queueReport(state, kernel, rec, 'revert');
      notes.push(`${rec.name} is no longer loaded in the kernel; recorded as reverted`);
    } else if (rec.outcome === 'transition' && !lp.transition) {
      rec.outcome = 'applied';
      delete rec.transition;
      rec.at = now();
      queueReport(state, kernel, rec, 'apply');
      notes.push(`${rec.name}: the kernel finished the transition; applied`);
    }
  }
}

/*
 * A patch left behind by a kernel change: the machine booted another kernel than the one the patch was
 * applied on, so the boot unit did not load it. The record becomes `reverted` with one of two codes,
 * chosen by what the server last said of the booted kernel (the answer's signed `kernelSupport`, kept
 * in the state with the kernel it was for):
 *
 *   AGENT-KERNEL-UPGRADE-REQUIRED  `kernel-upgrade-required: built for R1 (id), this machine booted
 *                                  R2 (id): not loaded` — the default, also when the server said nothing
 *                                  (an older server) or spoke of another kernel;
 *   AGENT-KERNEL-UNSUPPORTED       `kernel-unsupported: built for …, this machine booted …: not loaded,
 *                                  the server has no patch for this kernel nor its flavour`.
 *
 * The first words are a stable prefix the server's machine view and `suture agent status` show. After
 * each accepted answer the records are re-worded by what it says (`rewordKernelChange`), and a record
 * whose words changed is reported again, so the server's view follows.
 */
import type { KernelIdentity } from '../manifest/protocol.js';
import { sameKernel } from './kernel-port.js';
import { queueReport } from './report.js';
import type { AgentState, KernelSupportRecord, PatchRecord } from './state.js';

/** The record's code when the machine booted another kernel than the one its patch was applied on. */
export const KERNEL_UPGRADE_REQUIRED = 'AGENT-KERNEL-UPGRADE-REQUIRED';
/** The same, when the server said it has no patch for the booted kernel nor for its flavour. */
export const KERNEL_UNSUPPORTED = 'AGENT-KERNEL-UNSUPPORTED';

const short = (k: KernelIdentity) => `${k.release} (${k.buildId.slice(0, 12)})`;

/** In the words the server's machine view and `suture agent status` show (stable prefix). */
export function upgradeRequiredReason(built: KernelIdentity, running: KernelIdentity): string {
  return `kernel-upgrade-required: built for ${short(built)}, this machine booted ${short(running)}: not loaded`;
}

export function unsupportedReason(built: KernelIdentity, running: KernelIdentity): string {
  return `kernel-unsupported: built for ${short(built)}, this machine booted ${short(running)}: not loaded, the server has no patch for this kernel nor its flavour`;
}

/** Whether the record is a patch left behind by a kernel change (either code). */
export function leftByKernelChange(rec: PatchRecord): boolean {
  return (
    rec.outcome === 'reverted' && (rec.code === KERNEL_UPGRADE_REQUIRED || rec.code === KERNEL_UNSUPPORTED)
  );
}

/** What the server said of `running`, when the last answer was about that very kernel. */
export function supportOf(state: AgentState, running: KernelIdentity): KernelSupportRecord | undefined {
  const s = state.kernelSupport;
  return s && sameKernel(s.kernel, running) ? s : undefined;
}

/** The code and reason of a patch built for `built`, not loaded on `running`. */
export function kernelChangeVerdict(
  state: AgentState,
  built: KernelIdentity,
  running: KernelIdentity,
): { code: string; reason: string } {
  return supportOf(state, running)?.support === 'unsupported'
    ? { code: KERNEL_UNSUPPORTED, reason: unsupportedReason(built, running) }
    : { code: KERNEL_UPGRADE_REQUIRED, reason: upgradeRequiredReason(built, running) };
}

/**
 * Re-word every record left behind by a kernel change by what the state now says of `running`;
 * a record whose code changed is reported again (the caller saves the state). Returns notes to log.
 */
export function rewordKernelChange(state: AgentState, running: KernelIdentity): string[] {
  const notes: string[] = [];
  for (const rec of Object.values(state.patches)) {
    if (!leftByKernelChange(rec) || !rec.kernel || sameKernel(rec.kernel, running)) continue;
    const v = kernelChangeVerdict(state, rec.kernel, running);
    if (v.code === rec.code) continue;
    rec.code = v.code;
    rec.reason = v.reason;
    queueReport(state, running, rec, 'revert');
    notes.push(`${rec.name}: ${v.reason}`);
  }
  return notes;
}

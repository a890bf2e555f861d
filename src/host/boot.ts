/*
 * Boot: re-apply the stored patches that belong to the kernel that just booted, and nothing else.
 *
 * A livepatch does not survive a reboot. At boot the systemd unit written by `suture host
 * install-service` runs `suture host boot-apply`, which walks the store in order and applies each
 * patch whose manifest names this kernel's release AND vmlinux build id; a patch for any other
 * kernel (the previous kernel before an upgrade, another flavour) is skipped with the reason.
 * One failing patch does not stop the others.
 */
import { SutureError, toDiagnostic } from '../diagnostic.js';
import { type ApplyResult, applyLivepatch } from './apply.js';
import type { EventSink } from './events.js';
import { runningKernel } from './identity.js';
import { readLivepatches, requireLivepatchSupport, requireRoot } from './livepatch.js';
import { type HostRoots, resolveRoots } from './roots.js';
import { storedPatches } from './store.js';

export interface BootOutcome {
  patch: string;
  seq: number;
  action: 'applied' | 'skipped' | 'failed';
  reason?: string;
  result?: ApplyResult;
}

export async function bootApply(
  opts: { roots?: Partial<HostRoots>; timeoutMs?: number; onEvent?: EventSink } = {},
): Promise<BootOutcome[]> {
  const roots = resolveRoots(opts.roots);
  requireRoot(roots, 're-applying stored livepatches');
  requireLivepatchSupport(roots);
  const kernel = runningKernel(roots);
  const problems: string[] = [];
  const stored = storedPatches(roots, problems);
  const out: BootOutcome[] = problems.map((p) => ({
    patch: '?',
    seq: -1,
    action: 'failed' as const,
    reason: p,
  }));
  for (const s of stored) {
    const patch = s.manifest.module.name;
    if (s.manifest.kernel.release !== kernel.release || s.manifest.kernel.buildId !== kernel.buildId) {
      out.push({
        patch,
        seq: s.seq,
        action: 'skipped',
        reason: `built for ${s.manifest.kernel.release} (${s.manifest.kernel.buildId.slice(0, 12)}), running ${kernel.release} (${kernel.buildId?.slice(0, 12) ?? 'no build id'})`,
      });
      continue;
    }
    if (readLivepatches(roots).some((p) => p.name === patch && p.state !== 'inactive')) {
      out.push({ patch, seq: s.seq, action: 'skipped', reason: 'already applied' });
      continue;
    }
    try {
      const result = await applyLivepatch({
        module: s.module,
        manifest: s.manifest,
        timeoutMs: opts.timeoutMs,
        roots,
        onEvent: opts.onEvent,
      });
      out.push({ patch, seq: s.seq, action: 'applied', result });
    } catch (e) {
      const d = toDiagnostic(e);
      out.push({ patch, seq: s.seq, action: 'failed', reason: `${d.code}: ${d.message}` });
      if (!(e instanceof SutureError)) throw e;
    }
  }
  return out;
}

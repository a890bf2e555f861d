/*
 * Boot: re-apply the stored patches that belong to the kernel that just booted, and nothing else.
 *
 * A livepatch does not survive a reboot. At boot the systemd unit written by `suture host
 * install-service` runs `suture host boot-apply`, which walks the store in order and applies each
 * patch whose manifest names this kernel's release AND vmlinux build id; a patch for any other
 * kernel (the previous kernel before an upgrade, another flavour) is skipped with the reason.
 * One failing patch does not stop the others.
 *
 * The kill switch (mode.ts) comes first: under `no-apply` or `stop` nothing is loaded. Then the
 * crash-loop guard (guard.ts): attempt marks left by the previous boot become bad marks, and a patch
 * marked bad is skipped with the reason.
 */
import { SutureError, toDiagnostic } from '../diagnostic.js';
import { type ApplyResult, applyLivepatch } from './apply.js';
import type { EventSink } from './events.js';
import { badPatches, settleEarlierBoots } from './guard.js';
import { builtFor, runningKernel } from './identity.js';
import { readLivepatches, requireLivepatchSupport, requireRoot } from './livepatch.js';
import { modeAllowsApply, readMode } from './mode.js';
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
  opts: { roots?: Partial<HostRoots>; timeoutMs?: number; onEvent?: EventSink; settleMs?: number } = {},
): Promise<BootOutcome[]> {
  const roots = resolveRoots(opts.roots);
  const problems: string[] = [];
  const stored = storedPatches(roots, problems);
  const mode = readMode(roots);
  if (!modeAllowsApply(mode.mode)) {
    const why = `suture.mode=${mode.mode} (from ${mode.source === 'cmdline' ? 'the kernel command line' : mode.path}): nothing is loaded`;
    return stored.map((s) => ({ patch: s.manifest.module.name, seq: s.seq, action: 'skipped', reason: why }));
  }
  requireRoot(roots, 're-applying stored livepatches');
  requireLivepatchSupport(roots);
  const kernel = runningKernel(roots);
  settleEarlierBoots(roots);
  const bad = new Map(badPatches(roots).map((b) => [b.patch, b]));
  const out: BootOutcome[] = problems.map((p) => ({
    patch: '?',
    seq: -1,
    action: 'failed' as const,
    reason: p,
  }));
  for (const s of stored) {
    const patch = s.manifest.module.name;
    if (!builtFor(s.manifest.kernel, kernel)) {
      out.push({
        patch,
        seq: s.seq,
        action: 'skipped',
        reason: `built for ${s.manifest.kernel.release} (${s.manifest.kernel.buildId.slice(0, 12)}), running ${kernel.release} (${kernel.buildId?.slice(0, 12) ?? 'no build id'})`,
      });
      continue;
    }
    const mark = bad.get(patch);
    if (mark) {
      const at = mark.at ? ` at ${mark.at}` : '';
      out.push({ patch, seq: s.seq, action: 'skipped', reason: `marked bad (${mark.reason}${at})` });
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
        settleMs: opts.settleMs,
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

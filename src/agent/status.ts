/*
 * `suture agent status`: what the agent last did, in the words of `canonical-livepatch status`.
 *
 *   last check: 1 minute ago
 *   kernel: 6.1.0-53-cloud-amd64
 *   server check-in: succeeded          (or: failed: connection refused (…))
 *   patch state: ✓ all applicable livepatch modules inserted
 *   patch version: cmdline 1
 *
 * Computed from the persisted state and, when readable, the kernel's own list of loaded livepatches
 * (the kernel's truth wins over the record). Patch state is one of: `✓ all applicable livepatch modules
 * inserted`, `nothing to apply` (`: the server has patches for RELEASE, none offered to this machine
 * (tier T)` when it said so), `kernel not supported` (no livepatch support), `kernel upgrade required:
 * NAME VERSION (RELEASE) built for another kernel, none offered for RELEASE` (the machine booted
 * another kernel than the one its patches were applied on, and the server offers none for this one;
 * `; the server has patches for R1, R2` when its answer named the kernels of this flavour it patches),
 * `unsupported: the server has no patch for RELEASE nor any kernel of its flavour` (its answer said
 * so), `apply failed: NAME: why`, `applying NAME`, `transition in progress: NAME`, `pending: NAME`,
 * `check-in pending`, `not enrolled`.
 */
import { leftByKernelChange, supportOf } from './kernel-change.js';
import type { LoadedLivepatch, RunningKernel } from './kernel-port.js';
import type { AgentState } from './state.js';

export type PatchStateCode =
  | 'applied'
  | 'nothing-to-apply'
  | 'kernel-not-supported'
  | 'kernel-upgrade-required'
  | 'unsupported'
  | 'apply-failed'
  | 'applying'
  | 'transition'
  | 'pending'
  | 'check-in-pending'
  | 'not-enrolled';

export interface AgentStatusPatch {
  patchId: string;
  name: string;
  version: string;
  /** the agent's record: applied, transition, stalled, failed, refused, reverted — or `offered` */
  state: string;
  /** loaded and enabled in the kernel right now (null when the kernel could not be read) */
  loaded: boolean | null;
  reason?: string;
  blockingTasks?: { pid: number; comm: string; stack: string[] }[];
}

export interface AgentStatus {
  enrolled: boolean;
  server: string | null;
  machineId: string | null;
  tier: string | null;
  lastCheck: string | null;
  kernel: { release: string; buildId: string } | null;
  serverCheckin: { state: 'succeeded' | 'failed' | 'never'; error?: string; consecutiveFailures: number };
  patchState: { code: PatchStateCode; text: string };
  patchVersion: string | null;
  intervalSeconds: number;
  patches: AgentStatusPatch[];
}

export function agoText(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} second${s === 1 ? '' : 's'} ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'} ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} hour${h === 1 ? '' : 's'} ago`;
  const d = Math.round(h / 24);
  return `${d} days ago`;
}

/**
 * The patch state when nothing is offered: by what the last answer said of this kernel when it said
 * anything (an older server does not), else by the patches left behind by a kernel change.
 */
function nothingOffered(
  state: AgentState,
  kernel: { release: string; buildId: string } | null,
): { code: PatchStateCode; text: string } {
  const elsewhere = Object.values(state.patches).filter(leftByKernelChange);
  const left = elsewhere.map((r) => `${r.name} ${r.version} (${r.kernel?.release ?? '?'})`).join(', ');
  const support = kernel ? supportOf(state, kernel) : undefined;
  if (kernel && support?.support === 'unsupported') {
    return {
      code: 'unsupported',
      text: `unsupported: the server has no patch for ${kernel.release} nor any kernel of its flavour${left ? `; ${left} built for another kernel, not loaded` : ''}`,
    };
  }
  if (kernel && support?.support === 'upgrade-required') {
    const to = support.patchedKernels.map((k) => k.release).join(', ');
    return {
      code: 'kernel-upgrade-required',
      text: `kernel upgrade required: ${left ? `${left} built for another kernel, ` : ''}none offered for ${kernel.release}; the server has patches for ${to}`,
    };
  }
  if (kernel && support?.support === 'patched') {
    return {
      code: 'nothing-to-apply',
      text: `nothing to apply: the server has patches for ${kernel.release}, none offered to this machine (tier ${state.enrollment?.tier ?? '?'})`,
    };
  }
  if (elsewhere.length && kernel) {
    return {
      code: 'kernel-upgrade-required',
      text: `kernel upgrade required: ${left} built for another kernel, none offered for ${kernel.release}`,
    };
  }
  return { code: 'nothing-to-apply', text: 'nothing to apply' };
}

export function computeStatus(
  state: AgentState,
  running: RunningKernel | null,
  loaded: LoadedLivepatch[] | null,
): AgentStatus {
  const byName = loaded ? new Map(loaded.map((l) => [l.name, l])) : null;
  const isLoaded = (moduleName: string): boolean | null =>
    byName ? byName.get(moduleName)?.enabled === true : null;
  const kernel = running ? { release: running.release, buildId: running.buildId } : state.kernel;
  const supported = running ? running.livepatchSupported : state.kernelSupported;

  const patches: AgentStatusPatch[] = [];
  const seen = new Set<string>();
  for (const o of state.offered) {
    seen.add(o.patchId);
    const rec = state.patches[o.patchId];
    patches.push({
      patchId: o.patchId,
      name: o.name,
      version: o.version,
      state: rec?.outcome ?? 'offered',
      loaded: rec ? isLoaded(rec.moduleName) : byName ? false : null,
      ...(rec?.reason ? { reason: rec.reason } : {}),
      ...(rec?.transition?.blockingTasks.length ? { blockingTasks: rec.transition.blockingTasks } : {}),
    });
  }
  for (const rec of Object.values(state.patches)) {
    if (seen.has(rec.patchId)) continue;
    patches.push({
      patchId: rec.patchId,
      name: rec.name,
      version: rec.version,
      state: rec.outcome,
      loaded: isLoaded(rec.moduleName),
      ...(rec.reason ? { reason: rec.reason } : {}),
    });
  }

  const patchState = ((): { code: PatchStateCode; text: string } => {
    if (!state.enrollment) return { code: 'not-enrolled', text: 'not enrolled (run `suture agent enable`)' };
    if (supported === false) return { code: 'kernel-not-supported', text: 'kernel not supported' };
    if (state.intent) {
      return {
        code: 'applying',
        text: `${state.intent.op === 'apply' ? 'applying' : 'reverting'} ${state.intent.name}`,
      };
    }
    if (!state.lastSuccessAt) return { code: 'check-in-pending', text: 'check-in pending' };
    if (state.offered.length === 0) return nothingOffered(state, kernel);
    // Applicable: offers newest first, down to and including the first cumulative one that is in.
    const applicable: AgentStatusPatch[] = [];
    for (let i = 0; i < state.offered.length; i++) {
      const p = patches[i] as AgentStatusPatch;
      applicable.push(p);
      const offer = state.offered[i];
      const live = p.loaded ?? (p.state === 'applied' || p.state === 'transition');
      if (offer?.replace && live) break;
    }
    const failed = applicable.filter((p) => ['failed', 'stalled', 'refused'].includes(p.state) && !p.loaded);
    if (failed.length) {
      return {
        code: 'apply-failed',
        text: `apply failed: ${failed.map((p) => `${p.name}: ${p.reason ?? p.state}`).join('; ')}`,
      };
    }
    const inTransition = applicable.filter((p) => p.state === 'transition');
    if (inTransition.length) {
      return {
        code: 'transition',
        text: `transition in progress: ${inTransition.map((p) => p.name).join(', ')}`,
      };
    }
    const missing = applicable.filter((p) => !(p.loaded ?? p.state === 'applied'));
    if (missing.length) return { code: 'pending', text: `pending: ${missing.map((p) => p.name).join(', ')}` };
    return { code: 'applied', text: '✓ all applicable livepatch modules inserted' };
  })();

  const live = Object.values(state.patches).filter(
    (r) => (isLoaded(r.moduleName) ?? r.outcome === 'applied') && r.outcome !== 'reverted',
  );
  const patchVersion = live.length ? live.map((r) => `${r.name} ${r.version}`).join(', ') : null;

  return {
    enrolled: state.enrollment !== null,
    server: state.enrollment?.server ?? null,
    machineId: state.enrollment?.machineId ?? null,
    tier: state.enrollment?.tier ?? null,
    lastCheck: state.lastCheck?.at ?? null,
    kernel,
    serverCheckin: state.lastCheck
      ? {
          state: state.lastCheck.ok ? 'succeeded' : 'failed',
          ...(state.lastCheck.error ? { error: state.lastCheck.error } : {}),
          consecutiveFailures: state.failures,
        }
      : { state: 'never', consecutiveFailures: 0 },
    patchState,
    patchVersion,
    intervalSeconds: state.intervalSeconds,
    patches,
  };
}

export function renderStatus(s: AgentStatus, now = Date.now()): string {
  const lines = [
    `last check: ${s.lastCheck ? agoText(s.lastCheck, now) : 'never'}`,
    `kernel: ${s.kernel?.release ?? 'unknown'}`,
    `server check-in: ${s.serverCheckin.state === 'failed' ? `failed: ${s.serverCheckin.error ?? 'unknown'}` : s.serverCheckin.state}`,
    `patch state: ${s.patchState.text}`,
    `patch version: ${s.patchVersion ?? 'none'}`,
  ];
  if (s.server) lines.push(`server: ${s.server} (machine ${s.machineId}, tier ${s.tier})`);
  for (const p of s.patches) {
    if (!p.blockingTasks) continue;
    lines.push(`${p.name}: transition held back by:`);
    for (const t of p.blockingTasks)
      lines.push(`  ${t.comm} (pid ${t.pid})${t.stack[0] ? ` in ${t.stack[0]}` : ''}`);
  }
  return lines.join('\n');
}

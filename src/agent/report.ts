/*
 * Reporting: how the agent's view of a patch becomes the wire's PatchStatus, and the outbox.
 *
 * The agent knows finer outcomes than the wire carries: `stalled` (the transition did not complete in
 * time and was rolled back) and `refused` (never handed to the kernel) both travel as `failed` with the
 * reason, and a stall carries its blocking tasks in `transition`. A patch the host's crash-loop guard
 * marked bad travels as `bad` with its reason (oops, warn, panic, no-return) and the kernel log as
 * `excerpt`. Every result is first queued in the
 * persisted outbox (in the same atomic state write that records it) and only then sent, so a result is
 * never lost to a crash or to the server being down: the outbox is flushed at every check-in.
 */
import type { KernelIdentity, PatchStatus, ReportRequest } from '../manifest/protocol.js';
import { type ServerClient, ServerRefusedError } from './server-client.js';
import { type AgentState, loadState, type PatchRecord, saveState } from './state.js';

const MAX_OUTBOX = 256;
const MAX_REASON = 4000;

/** The kernel log as the wire takes it: no control character but newline, at most 4096 characters. */
export function wireLog(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code === 10 || (code >= 32 && code !== 127) ? c : ' ';
  }
  return out.slice(0, 4096);
}

export function patchStatusOf(r: PatchRecord): PatchStatus {
  const reason = r.reason?.slice(0, MAX_REASON);
  switch (r.outcome) {
    case 'applied':
      return { patchId: r.patchId, state: 'applied' };
    case 'transition':
      return {
        patchId: r.patchId,
        state: 'transition',
        ...(r.transition ? { transition: r.transition } : {}),
      };
    case 'reverted':
      return { patchId: r.patchId, state: 'reverted', ...(reason ? { reason } : {}) };
    case 'bad':
      return {
        patchId: r.patchId,
        state: 'bad',
        reason: r.badReason ?? 'no-return',
        excerpt: wireLog(r.kernelLog ?? ''),
      };
    case 'stalled':
    case 'failed':
    case 'refused':
      return {
        patchId: r.patchId,
        state: 'failed',
        reason:
          `${r.outcome === 'refused' ? 'refused' : r.outcome === 'stalled' ? 'transition stalled' : 'apply failed'}: ${reason ?? r.code ?? 'unknown'}`.slice(
            0,
            MAX_REASON,
          ),
        ...(r.transition ? { transition: r.transition } : {}),
      };
  }
}

/** Queue a report for `record` in `state` (the caller saves the state). */
export function queueReport(
  state: AgentState,
  kernel: KernelIdentity,
  record: PatchRecord,
  action: 'apply' | 'revert',
): void {
  state.outbox.push({ kernel, status: patchStatusOf(record), action });
  if (state.outbox.length > MAX_OUTBOX) state.outbox.splice(0, state.outbox.length - MAX_OUTBOX);
}

/**
 * Send queued reports oldest first; each one acknowledged is removed from the persisted outbox. A report
 * the server refuses for good (4xx: e.g. a patch it no longer knows) is dropped and logged; any other
 * failure stops the flush (the rest waits for the next check-in) and is rethrown.
 */
export async function flushOutbox(
  stateDir: string,
  client: ServerClient,
  log: (line: string) => void = () => {},
): Promise<number> {
  let sent = 0;
  for (;;) {
    const state = loadState(stateDir);
    const next: ReportRequest | undefined = state.outbox[0];
    if (!next) return sent;
    try {
      await client.report(next);
    } catch (e) {
      if (!(e instanceof ServerRefusedError && e.permanent)) throw e;
      log(`report for patch ${next.status.patchId} dropped: ${e.diagnostic.message}`);
    }
    state.outbox.shift();
    saveState(stateDir, state);
    sent++;
  }
}

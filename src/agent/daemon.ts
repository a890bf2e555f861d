/*
 * The agent daemon: check in, converge, wait, again — until told to stop.
 *
 * The wait after a check-in is the server's interval with jitter; after a failed check-in it is an
 * exponential back-off (schedule.ts). The server being down never touches the kernel: applied patches
 * stay applied, the state records that the last check-in failed and why. Before the first check-in the
 * journal is reconciled with the kernel (journal.ts), so a daemon restarted after kill -9 converges
 * without applying anything twice. SIGTERM/SIGINT end the wait, never an operation in progress.
 */
import { toDiagnostic } from '../diagnostic.js';
import { type AgentContext, checkInOnce, requireEnrollment } from './checkin.js';
import { takePidFile } from './pidfile.js';
import { defaultSchedule, nextDelaySeconds } from './schedule.js';
import { loadState } from './state.js';

export interface DaemonOptions extends AgentContext {
  /** override the server's interval (seconds), e.g. for tests */
  intervalSeconds?: number;
  /** override the back-off cap (seconds) */
  backoffCapSeconds?: number;
  /** run this many check-ins and return (default: forever) */
  maxCheckins?: number;
  /** resolves the wait early and ends the loop */
  signal?: AbortSignal;
}

function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, seconds * 1000);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  requireEnrollment(loadState(opts.stateDir), opts.stateDir);
  const release = takePidFile(opts.stateDir);
  try {
    let n = 0;
    while (!opts.signal?.aborted) {
      try {
        const r = await checkInOnce(opts);
        if (r.ok) {
          const did = [
            r.applied.length ? `applied ${r.applied.join(', ')}` : '',
            r.reverted.length ? `reverted ${r.reverted.join(', ')}` : '',
            r.refused.length ? `refused ${r.refused.join(', ')}` : '',
            r.failed.length ? `failed ${r.failed.join(', ')}` : '',
          ].filter(Boolean);
          opts.log(`check-in ok${did.length ? `: ${did.join('; ')}` : ''}`);
        }
      } catch (e) {
        // Not server trouble (that is handled inside): the kernel or the state. Log and keep going.
        opts.log(`check-in aborted: ${toDiagnostic(e).code}: ${toDiagnostic(e).message}`);
      }
      const s = loadState(opts.stateDir);
      const failures = s.failures;
      const interval = opts.intervalSeconds ?? s.intervalSeconds;
      n++;
      if (opts.maxCheckins !== undefined && n >= opts.maxCheckins) break;
      const schedule = defaultSchedule(interval);
      if (opts.backoffCapSeconds !== undefined) schedule.backoffCapSeconds = opts.backoffCapSeconds;
      const wait = nextDelaySeconds(schedule, failures);
      if (failures > 0) opts.log(`server unreachable ${failures}×; next attempt in ${wait.toFixed(1)} s`);
      await sleep(wait, opts.signal);
    }
  } finally {
    release();
  }
}

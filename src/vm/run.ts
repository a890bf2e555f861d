/*
 * One-shot runs: boot, run a script, collect the kernel log, power off, and say what happened.
 *
 * The verdict (VmOutcome) puts the kernel first: a panic, an oops/BUG or a WARNING on the console is a
 * failure whatever the script's exit status, since a patch that makes the kernel complain is not a
 * working patch. Then the hard timeout, then the script's own status. When the script failed because
 * the kernel refused a module, the kernel's reason (from its log) is in `moduleRefusals` and in the
 * one-line `message`, so a wrong-kernel module reads as "version magic ... should be ...", not as a
 * mystery exit status.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isSutureError } from '../diagnostic.js';
import type { VmOptions, VmOutcome, VmResult } from './options.js';
import { findModuleRefusals, worstProblem } from './problems.js';
import { kernelLines, VmBootError, VmSession } from './session.js';

const DEFAULT_RUN_TIMEOUT = 300_000;
const SCRIPT_PATH = '/suture/script';

export async function runInVm(opts: VmOptions & { script: string }): Promise<VmResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT;
  const t0 = performance.now();
  const { script, ...vmOpts } = opts;
  const session = new VmSession({ ...vmOpts, timeoutMs });
  // the script travels in the per-run layer, not over the serial line
  const scriptFile = join(session.workDir, 'script');
  writeFileSync(scriptFile, script, { mode: 0o755 });
  session.opts.files = [...(opts.files ?? []), { from: scriptFile, to: SCRIPT_PATH }];

  let exitCode: number | null = null;
  let output = '';
  let runMs = 0;
  let kernelLog = '';
  let failure: string | undefined;
  let booted = false;
  let scriptTimedOut = false;
  try {
    await session.start();
    booted = true;
    // leave time to collect dmesg before the hard limit
    const reserve = Math.min(15_000, timeoutMs / 5);
    const remaining = Math.max(1000, timeoutMs - (performance.now() - t0) - reserve);
    const r = await session.exec(SCRIPT_PATH, { timeoutMs: remaining });
    exitCode = r.exitCode;
    output = r.output;
    runMs = r.durationMs;
    scriptTimedOut = r.timedOut;
    kernelLog = await session.dmesg();
  } catch (e) {
    if (!isSutureError(e)) {
      await session.close();
      throw e;
    }
    if (!(e instanceof VmBootError) && e.code !== 'VM-EXEC-TIMEOUT') {
      await session.close();
      throw e;
    }
    failure = e.diagnostic.message;
    if (e.code === 'VM-BOOT-INIT' && e.diagnostic.detail?.length) {
      failure += `: ${e.diagnostic.detail
        .filter((l) => l.trim())
        .slice(0, 6)
        .join(' | ')}`;
    }
    // the script's partial output, when the VM died under it (not under the dmesg that followed)
    if (e instanceof VmBootError && booted && exitCode === null) output = e.output;
    if (booted && runMs === 0) runMs = performance.now() - t0 - session.bootMs;
  } finally {
    await session.close();
  }
  if (!kernelLog) kernelLog = kernelLines(session.console);

  const problems = session.problems;
  const worst = worstProblem(problems);
  const moduleRefusals = findModuleRefusals(kernelLog);
  let outcome: VmOutcome;
  let message: string;
  if (worst?.kind === 'panic') {
    outcome = 'panic';
    message = `kernel panic: ${worst.title}`;
  } else if (worst && (worst.kind === 'oops' || worst.kind === 'bug')) {
    outcome = 'oops';
    message = `kernel ${worst.kind}: ${worst.title}`;
  } else if (worst?.kind === 'warning') {
    outcome = 'warning';
    message = `kernel warning: ${worst.title}`;
  } else if (
    session.end.kind === 'timeout' ||
    scriptTimedOut ||
    (failure && /time limit|did not finish/.test(failure))
  ) {
    outcome = 'timeout';
    message = failure ?? `the script was killed after ${Math.round(runMs)} ms (time limit)`;
  } else if (!booted) {
    outcome = 'boot-failed';
    message = failure ?? 'the VM did not boot';
  } else if (failure) {
    outcome = 'script-failed';
    message = failure;
  } else if (exitCode !== 0) {
    outcome = 'script-failed';
    message = `script exited with status ${exitCode}`;
  } else {
    outcome = 'ok';
    message = 'script exited with status 0';
  }
  if (outcome !== 'ok' && moduleRefusals.length) {
    message += `; the kernel refused ${moduleRefusals.map((r) => `${r.module}: ${r.reason}`).join('; ')}`;
  }
  return {
    outcome,
    message,
    exitCode,
    output,
    kernelLog,
    console: session.console,
    bootMs: session.bootMs,
    runMs,
    problems,
    moduleRefusals,
    initramfs: { bytes: session.initramfs?.bytes ?? 0, layers: session.initramfs?.layers ?? [] },
  };
}

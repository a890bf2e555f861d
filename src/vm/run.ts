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
import { isSutureError, type SutureError } from '../diagnostic.js';
import { VmBootError } from './end.js';
import type { VmOptions, VmOutcome, VmResult } from './options.js';
import { findModuleRefusals, type KernelProblem, type ModuleRefusal, worstProblem } from './problems.js';
import { kernelLines, VmSession } from './session.js';

const DEFAULT_RUN_TIMEOUT = 300_000;
const SCRIPT_PATH = '/suture/script';

/** What a run produced, before the verdict. */
export interface RunFacts {
  booted: boolean;
  exitCode: number | null;
  output: string;
  runMs: number;
  kernelLog: string;
  scriptTimedOut: boolean;
  /** the session's hard limit ended it */
  sessionTimedOut: boolean;
  /** why the boot or the script did not finish (a VmBootError or VM-EXEC-TIMEOUT message) */
  failure?: string;
}

/**
 * The verdict, kernel first: a panic, then an oops or BUG, then a WARNING, whatever the script did;
 * then a timeout, a failed boot, the script's failure or status. A failed run names the modules the
 * kernel refused and why.
 */
export function verdict(
  facts: RunFacts,
  problems: readonly KernelProblem[],
  moduleRefusals: readonly ModuleRefusal[],
): { outcome: VmOutcome; message: string } {
  const worst = worstProblem(problems);
  const { failure, booted, exitCode } = facts;
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
    facts.sessionTimedOut ||
    facts.scriptTimedOut ||
    (failure && /time limit|did not finish/.test(failure))
  ) {
    outcome = 'timeout';
    message = failure ?? `the script was killed after ${Math.round(facts.runMs)} ms (time limit)`;
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
  return { outcome, message };
}

/** A boot failure or exec timeout as one line, with the first lines of /init's complaint. */
function failureOf(e: SutureError): string {
  let failure = e.diagnostic.message;
  if (e.code === 'VM-BOOT-INIT' && e.diagnostic.detail?.length) {
    failure += `: ${e.diagnostic.detail
      .filter((l) => l.trim())
      .slice(0, 6)
      .join(' | ')}`;
  }
  return failure;
}

/** Boot, run the script with time left to collect dmesg, and close; boot failures and timeouts are facts. */
async function runScript(session: VmSession, timeoutMs: number, t0: number): Promise<RunFacts> {
  const facts: RunFacts = {
    booted: false,
    exitCode: null,
    output: '',
    runMs: 0,
    kernelLog: '',
    scriptTimedOut: false,
    sessionTimedOut: false,
  };
  try {
    await session.start();
    facts.booted = true;
    // leave time to collect dmesg before the hard limit
    const reserve = Math.min(15_000, timeoutMs / 5);
    const remaining = Math.max(1000, timeoutMs - (performance.now() - t0) - reserve);
    const r = await session.exec(SCRIPT_PATH, { timeoutMs: remaining });
    facts.exitCode = r.exitCode;
    facts.output = r.output;
    facts.runMs = r.durationMs;
    facts.scriptTimedOut = r.timedOut;
    facts.kernelLog = await session.dmesg();
  } catch (e) {
    if (!isSutureError(e) || (!(e instanceof VmBootError) && e.code !== 'VM-EXEC-TIMEOUT')) {
      await session.close();
      throw e;
    }
    facts.failure = failureOf(e);
    // the script's partial output, when the VM died under it (not under the dmesg that followed)
    if (e instanceof VmBootError && facts.booted && facts.exitCode === null) facts.output = e.output;
    if (facts.booted && facts.runMs === 0) facts.runMs = performance.now() - t0 - session.bootMs;
  } finally {
    await session.close();
  }
  if (!facts.kernelLog) facts.kernelLog = kernelLines(session.console);
  facts.sessionTimedOut = session.end.kind === 'timeout';
  return facts;
}

export async function runInVm(opts: VmOptions & { script: string }): Promise<VmResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT;
  const t0 = performance.now();
  const { script, ...vmOpts } = opts;
  const session = new VmSession({ ...vmOpts, timeoutMs });
  // the script travels in the per-run layer, not over the serial line
  const scriptFile = join(session.workDir, 'script');
  writeFileSync(scriptFile, script, { mode: 0o755 });
  session.opts.files = [...(opts.files ?? []), { from: scriptFile, to: SCRIPT_PATH }];
  const facts = await runScript(session, timeoutMs, t0);
  const problems = session.problems;
  const moduleRefusals = findModuleRefusals(facts.kernelLog);
  const { outcome, message } = verdict(facts, problems, moduleRefusals);
  const { exitCode, output, kernelLog, runMs } = facts;
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

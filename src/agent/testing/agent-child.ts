/*
 * The agent daemon as a separate process, on a FileKernel: what the crash tests SIGKILL.
 *
 *   node dist/agent/testing/agent-child.js STATE_DIR KERNEL_FILE INTERVAL_SECONDS
 *
 * Runs exactly the daemon `suture agent run` runs (runDaemon), only bound to the pretend kernel.
 * Logs one line per event on stdout, so a test can wait for "downloading" or "applying" before it
 * kills the process. Test support only.
 */
import { runDaemon } from '../daemon.js';
import { FileKernel } from './file-kernel.js';

const [stateDir, kernelFile, interval] = process.argv.slice(2);
if (!stateDir || !kernelFile) {
  console.error('usage: agent-child STATE_DIR KERNEL_FILE [INTERVAL_SECONDS]');
  process.exit(2);
}
const ac = new AbortController();
process.on('SIGTERM', () => ac.abort());
await runDaemon({
  stateDir,
  kernel: new FileKernel(kernelFile),
  hostname: 'child',
  applyTimeoutMs: 10_000,
  log: (l) => console.log(l),
  intervalSeconds: Number(interval ?? '1'),
  backoffCapSeconds: 1,
  signal: ac.signal,
});

/*
 * One agent per state directory: a pid file taken with O_EXCL.
 *
 * Two daemons acting on the same journal could each decide to apply the same patch. `agent.pid` holds
 * the running daemon's pid; a file left by a daemon that was killed (kill -9, power cut) names a pid
 * that no longer exists (or is not a suture agent any more) and is taken over, so a restart after a
 * crash is never blocked.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('agent');
  } catch {
    return true;
  }
}

/** Take the state directory's pid file; returns a release function. */
export function takePidFile(stateDir: string): () => void {
  const file = join(stateDir, 'agent.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new SutureError({
          code: 'AGENT-ALREADY-RUNNING',
          message: `an agent (pid ${pid}) is already running on ${stateDir}`,
          hint: `stop it first, or use another --state-dir; remove ${file} only if pid ${pid} is not an agent`,
        });
      }
      rmSync(file, { force: true }); // stale: its daemon died without cleaning up
    }
  }
  throw new SutureError({ code: 'AGENT-PIDFILE', message: `cannot take ${file}` });
}

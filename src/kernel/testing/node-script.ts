/*
 * A small ESM script run in a separate node process, for the kernel cache's tests of what several
 * processes do at once (locks, partial downloads, a process killed mid-fetch).
 */
import { spawn } from 'node:child_process';

export interface ScriptRun {
  /** its exit code (null when killed) and everything it printed, stdout and stderr together */
  done: Promise<{ code: number | null; out: string }>;
  kill: () => void;
}

/** Start `script` with `env` added to this process's environment. */
export function nodeScript(script: string, env: Record<string, string> = {}): ScriptRun {
  const p = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  p.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const done = new Promise<{ code: number | null; out: string }>((r) =>
    p.on('close', (code) => r({ code, out })),
  );
  return { done, kill: () => p.kill('SIGKILL') };
}

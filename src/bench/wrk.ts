/*
 * The HTTP load generator of the server benchmarks: wrk (Debian package `wrk`, installed by
 * scripts/setup.sh), a C program with a LuaJIT hook per request.
 *
 * On a two-core machine the load generator shares the cores with the server and the database, so its
 * own cost is part of what is measured: autocannon (JavaScript) spent 55–65 µs of CPU per request,
 * wrk spends 13–25 µs. A fleet's agents run elsewhere; the cheaper the generator, the closer the rows
 * are to what the server can do.
 *
 * `runWrk` runs one load with a Lua script that builds each request, and returns what wrk's `done`
 * hook prints (requests, non-2xx and errors, latency percentiles) and the CPU wrk used, read from
 * this process's reaped children (process-cpu.ts).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { findOnPath } from '../host/roots.js';
import { cpuMs } from './process-cpu.js';

export const findWrk = (): string | undefined => findOnPath('wrk');

export interface WrkResult {
  /** 2xx answers a second */
  rate: number;
  p50: number;
  p99: number;
  /** non-2xx answers, socket errors and timeouts */
  bad: number;
  /** CPU of wrk itself (ms), over how long it ran (s) */
  cpuMs: number;
  seconds: number;
}

/**
 * Lua that sends `body` as POST `path` with `headers`, and a last header from `perRequest(i)` — a Lua
 * expression of the request counter `i` (per thread) — and prints the result as JSON when done.
 * With `stopAfter`, the thread stops after that many answers.
 */
export function wrkScript(opts: {
  path: string;
  headers: Record<string, string>;
  body: string;
  perRequest?: { header: string; lua: string };
  stopAfter?: number;
}): string {
  const lua = (s: string) => JSON.stringify(s); // a JSON string is a valid Lua string for our ASCII
  const headers = Object.entries(opts.headers)
    .map(([k, v]) => `[${lua(k)}] = ${lua(v)}`)
    .join(', ');
  const per = opts.perRequest;
  return `
local body = ${lua(opts.body)}
local headers = { ${headers} }
local i = 0
local answers = 0
request = function()
  i = i + 1
  ${per ? `headers[${lua(per.header)}] = ${per.lua}` : ''}
  return wrk.format("POST", ${lua(opts.path)}, headers, body)
end
${
  opts.stopAfter
    ? `response = function(status, h, b)
  answers = answers + 1
  if answers >= ${opts.stopAfter} then wrk.thread:stop() end
end`
    : ''
}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRK {"requests":%d,"duration_us":%d,"status":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;
}

export async function runWrk(opts: {
  wrk: string;
  url: string;
  connections: number;
  seconds: number;
  /** a file of this name is written with the script */
  scriptFile: string;
  script: string;
}): Promise<WrkResult> {
  await writeFile(opts.scriptFile, opts.script);
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s'];
  const before = cpuMs([process.pid]);
  const own = process.cpuUsage();
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(opts.wrk, [...args, '-s', opts.scriptFile, opts.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited (${code}): ${text.trim()}`)),
    );
  });
  // what this process spent itself meanwhile is not wrk's
  const mine = process.cpuUsage(own);
  const wrkMs = cpuMs([process.pid]) - before - (mine.user + mine.system) / 1000;
  const m = /^WRK (\{.*\})$/m.exec(out);
  if (!m?.[1]) throw new Error(`wrk printed no result: ${out.trim()}`);
  const r = JSON.parse(m[1]) as {
    requests: number;
    duration_us: number;
    status: number;
    errors: number;
    p50_us: number;
    p99_us: number;
  };
  const seconds = r.duration_us / 1e6;
  const ok = r.requests - r.status;
  return {
    rate: ok / seconds,
    p50: r.p50_us / 1000,
    p99: r.p99_us / 1000,
    bad: r.status + r.errors,
    cpuMs: Math.max(0, wrkMs),
    seconds,
  };
}

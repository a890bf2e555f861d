/*
 * Server check-in throughput and latency with 100,000 enrolled machines, on SQLite and PostgreSQL.
 *
 * The server runs in a child process (its own event loop, as in production); the load generator
 * (wrk, wrk.ts) runs on loopback with a fixed number of connections for a bounded time. Every request
 * is a real check-in of a different machine (credentials rotate through all 100,000), for a kernel
 * with a published cumulative patch the machine reports as applied: auth by credential hash, machine
 * row update, patch-state sync, offer list with manifest and signature in the answer (batch-signed,
 * as today's agent asks). A warm-up pass first has every machine check in once, so the measured load
 * is a steady fleet's; the first check-ins after an apply are in that pass.
 * Baseline, same run: a bare fastify server answering the same POST with a constant JSON document.
 * Goal (issue #4): ≥ 5,000 check-ins/s with p99 < 20 ms on SQLite on the 2-core machine.
 * Issue #13: the same load again with rollout waves in force (a newer patch promoted to `stable` in
 * waves 10/50/100, so every check-in is answered per machine bucket), against the run without; and on
 * PostgreSQL ≥ 10,000 check-ins/s at 100,000 machines, and `suture server --workers N` (one process per
 * core, server/workers.ts) against one process on the same database.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_ANSWER_FIELDS, ANSWER_FIELDS_HEADER } from '../manifest/protocol.js';
import { AdminClient } from '../server/admin-client.js';
import { hashSecret } from '../server/credentials.js';
import { openStore } from '../server/store.js';
import { BUILD_ID, RELEASE, writePatch } from '../server/testing/fleet-fixture.js';
import { findPostgres, startPostgres } from '../server/testing/postgres-fixture.js';
import type { BenchContext, Benchmark } from './harness.js';
import { childrenOf, cpuMs } from './process-cpu.js';
import { findWrk, runWrk, type WrkResult, wrkScript } from './wrk.js';

export const MACHINES = 100_000;
const DURATION_S = Number(process.env.SUTURE_BENCH_SECONDS ?? '10');
/** check-ins in flight at once: 64 of a fleet's 100,000 agents (a fleet at 10k/s has far more) */
const CONNECTIONS = 64;
const ADMIN = 'bench-admin-token-0123456789abcdef';

/** extra node flags for the server child, e.g. `--cpu-prof --cpu-prof-dir=DIR` to see where time goes */
const serverNodeArgs = (process.env.SUTURE_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** the server child prints `URL [PID,PID…]` (the worker pids with --workers) when it listens */
function spawnChild(script: string): Promise<{ child: ChildProcess; url: string; pids: number[] }> {
  const child = spawn(process.execPath, [...serverNodeArgs, '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(http:\/\/\S+)(?: ([\d,]+))?\n/m.exec(out);
      const pids = m?.[2] ? m[2].split(',').map(Number) : [child.pid ?? 0];
      if (m?.[1]) resolve({ child, url: m[1], pids });
    });
    child.once('exit', (code) => reject(new Error(`server child exited (${code})`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

export const credential = (i: number) => `sut_machine_bench_${i.toString().padStart(6, '0')}`;

function checkinBody(patchId: string | undefined): string {
  return JSON.stringify({
    kernel: { release: RELEASE, buildId: BUILD_ID },
    hostname: 'bench-host',
    agentVersion: 'bench',
    patches: patchId ? [{ patchId, state: 'applied' }] : [],
  });
}

/** the Lua expression of each request's credential: machine i of MACHINES, in turn */
const CREDENTIAL_LUA = `"Bearer ${credential(0).slice(0, -6)}" .. string.format("%06d", i % ${MACHINES})`;

/**
 * `connections` check-ins at a time for `seconds`, each of the next machine in turn, as today's agent
 * sends them (it names the answer fields it understands: kernel support, batch signatures); with
 * `stopAfter`, until that many were answered.
 */
async function load(
  target: { url: string; dir: string },
  body: string,
  seconds: number,
  stopAfter?: number,
): Promise<WrkResult> {
  const wrk = findWrk();
  if (!wrk) throw new Error(NO_WRK);
  return runWrk({
    wrk,
    url: target.url,
    connections: CONNECTIONS,
    seconds,
    scriptFile: join(target.dir, 'checkin.lua'),
    script: wrkScript({
      path: '/v1/checkin',
      headers: { 'content-type': 'application/json', [ANSWER_FIELDS_HEADER]: AGENT_ANSWER_FIELDS },
      body,
      perRequest: { header: 'authorization', lua: CREDENTIAL_LUA },
      ...(stopAfter ? { stopAfter } : {}),
    }),
  });
}

/** Every machine checks in once (its state recorded): what follows is a steady fleet. */
const warmUp = (target: { url: string; dir: string }, body: string) => load(target, body, 60, MACHINES);

/** the processes serving check-ins: the server child, and PostgreSQL's postmaster with its backends */
interface Served {
  /** the server process, or its workers */
  server: number[];
  postmaster?: number;
}

/** CPU per check-in (µs) of the server, the database and this process (the load generator) */
interface CpuShare {
  server: number;
  database: number;
  load: number;
}

async function measured(
  served: Served,
  run: () => Promise<WrkResult>,
): Promise<{ load: WrkResult; cpu: CpuShare }> {
  const db = () => (served.postmaster ? cpuMs([served.postmaster, ...childrenOf(served.postmaster)]) : 0);
  const s0 = cpuMs(served.server);
  const d0 = db();
  const r = await run();
  const n = r.rate * r.seconds;
  return {
    load: r,
    cpu: {
      server: ((cpuMs(served.server) - s0) * 1000) / n,
      database: ((db() - d0) * 1000) / n,
      load: (r.cpuMs * 1000) / n,
    },
  };
}

const cpuNote = (c: CpuShare) =>
  `CPU per check-in: server ${c.server.toFixed(0)} µs, database ${c.database.toFixed(0)} µs, load generator ${c.load.toFixed(0)} µs`;

async function recordedCheckins(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^suture_machine_checkins_total (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}

/** the postmaster's pid, first line of its pid file in the cluster's data directory */
export function postmasterPid(clusterDir: string): number | undefined {
  const pid = Number(readFileSync(join(clusterDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Seed MACHINES machines straight into the store (enrolling 100k over HTTP would measure enrollment). */
export async function seed(database: string): Promise<void> {
  const store = await openStore(database);
  try {
    const now = new Date().toISOString();
    await store.createToken(
      {
        id: 't-bench',
        hash: hashSecret('bench-token'),
        tier: 'stable',
        note: 'bench',
        uses: 0,
        createdAt: now,
      },
      { at: now, actor: 'bench', action: 'token.create', target: 't-bench', detail: {} },
    );
    const rows = Array.from({ length: MACHINES }, (_, i) => ({
      machineId: `m-${i.toString(16).padStart(16, '0')}`,
      credentialHash: hashSecret(credential(i)),
      hostname: `host-${i}`,
      kernelRelease: RELEASE,
      buildId: BUILD_ID,
      agentVersion: 'bench',
      tier: i % 10 === 0 ? 'canary' : 'stable',
    }));
    await store.bulkInsertMachines('t-bench', rows, now);
  } finally {
    await store.close();
  }
}

/** each engine's check-in rate in this run, for the PostgreSQL-against-SQLite row */
const rates = new Map<string, number>();

/**
 * One engine's rows. `workers` > 1 (PostgreSQL only) runs `suture server --workers N` (server/workers.ts)
 * and names the rows `PostgreSQL, N workers`, with the one-process run of this bench as their baseline.
 */
async function runEngine(ctx: BenchContext, kind: 'SQLite' | 'PostgreSQL', baseline: Baseline, workers = 1) {
  const engine = workers > 1 ? `${kind}, ${workers} workers` : kind;
  const dir = await mkdtemp(join(tmpdir(), 'suture-bench-'));
  const cluster = kind === 'PostgreSQL' ? await startPostgres() : undefined;
  let child: ChildProcess | undefined;
  try {
    const data = join(dir, 'data');
    const database = cluster ? await cluster.createDatabase('bench') : join(data, 'suture.db');
    await (await import('node:fs/promises')).mkdir(data, { recursive: true });
    const t0 = Date.now();
    await seed(database);
    const seedMs = Date.now() - t0;
    const options = JSON.stringify({
      dataDir: data,
      database,
      adminToken: ADMIN,
      checkinIntervalSeconds: 600,
    });
    const script =
      workers > 1
        ? `
      const { startWorkers } = await import(${JSON.stringify(new URL('../server/workers.js', import.meta.url).href)});
      const s = await startWorkers(${options}, ${workers});
      process.stdout.write(s.url + ' ' + s.pids.join(',') + '\\n');
      process.on('SIGTERM', () => s.close().then(() => process.exit(0)));`
        : `
      const { startServer } = await import(${JSON.stringify(new URL('../server/server.js', import.meta.url).href)});
      const s = await startServer(${options});
      process.stdout.write(s.url + '\\n');
      process.on('SIGTERM', () => s.close().then(() => process.exit(0)));`;
    const started = await spawnChild(script);
    child = started.child;
    const admin = new AdminClient({ server: started.url, adminToken: ADMIN });
    const w = await writePatch(dir, { name: 'cmdline', cves: ['CVE-2026-0001'] });
    const p = await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' });
    await admin.promote(p.id, 'stable');
    const body = checkinBody(p.id);
    const target = { url: started.url, dir };
    await warmUp(target, body); // caches, JIT, every machine's patch state recorded
    const served: Served = { server: started.pids, postmaster: cluster && postmasterPid(cluster.dir) };
    const before = await recordedCheckins(started.url);
    const { load: r, cpu } = await measured(served, () => load(target, body, DURATION_S));
    // the check-ins really reached the database: the server's own counter moved by as many
    const recorded = (await recordedCheckins(started.url)) - before;
    const note = `${MACHINES.toLocaleString('en')} machines seeded in ${(seedMs / 1000).toFixed(1)} s, ${CONNECTIONS} connections, ${DURATION_S} s, p50 ${r.p50} ms, ${r.bad} non-2xx/errors, ${recorded} check-ins recorded in the database; ${cpuNote(cpu)}`;
    ctx.report({
      name: `check-ins/s on ${engine} (higher is better)`,
      ours: r.rate,
      unit: '/s',
      baseline: { name: 'bare fastify POST', value: baseline.rate },
      goal:
        kind === 'PostgreSQL'
          ? { value: 10_000, lowerIsBetter: false, text: '≥ 10000 /s' }
          : { value: 5000, lowerIsBetter: false, text: '≥ 5000 /s' },
      note,
    });
    ctx.report({
      name: `server CPU per check-in on ${engine}`,
      ours: cpu.server,
      unit: 'µs',
      baseline: { name: 'bare fastify POST, per request', value: baseline.cpu },
      note: 'user + system time of the server process (or its workers) over the measured load, by /proc (load-independent)',
    });
    rates.set(engine, r.rate);
    const sqlite = rates.get('SQLite');
    const oneProcess = rates.get(kind);
    if (workers > 1 && oneProcess !== undefined) {
      ctx.report({
        name: `check-ins/s on ${engine} against one process, same run (higher is better)`,
        ours: r.rate,
        unit: '/s',
        baseline: { name: `${kind}, one process`, value: oneProcess },
        note: `${availableParallelism()} cores here, shared with PostgreSQL and the load generator`,
      });
    }
    if (engine === 'PostgreSQL' && sqlite !== undefined) {
      ctx.report({
        name: 'check-ins/s on PostgreSQL against SQLite, same run (higher is better)',
        ours: r.rate,
        unit: '/s',
        baseline: { name: 'SQLite', value: sqlite },
      });
    }
    ctx.report({
      name: `check-in p99 latency on ${engine}`,
      ours: r.p99,
      unit: 'ms',
      baseline: { name: 'bare fastify POST', value: baseline.p99 },
      goal: { value: 20, text: '< 20 ms' },
    });
    // a newer patch rolling out to stable in waves: every stable check-in is answered per bucket
    const w2 = await writePatch(dir, { name: 'cmdline', version: '2', cves: ['CVE-2026-0001'] });
    const p2 = await admin.publish({ module: w2.module, manifest: w2.manifestPath, tier: 'canary' });
    await admin.promote(p2.id, 'stable', {
      waves: [10, 50, 100],
      gateCheckins: 1_000_000,
      soakSeconds: 3600,
    });
    await load(target, body, 2);
    const { load: waved, cpu: wavedCpu } = await measured(served, () => load(target, body, DURATION_S));
    ctx.report({
      name: `check-ins/s on ${engine} with rollout waves in force (higher is better)`,
      ours: waved.rate,
      unit: '/s',
      baseline: { name: 'the same server without waves', value: r.rate },
      goal: {
        value: kind === 'PostgreSQL' ? 10_000 : 5000,
        lowerIsBetter: false,
        text: kind === 'PostgreSQL' ? '≥ 10000 /s' : '≥ 5000 /s',
      },
      note: `p50 ${waved.p50} ms, p99 ${waved.p99} ms, ${waved.bad} non-2xx/errors; ${cpuNote(wavedCpu)}`,
    });
  } finally {
    if (child) await stopChild(child);
    cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

interface Baseline {
  rate: number;
  p99: number;
  /** the bare server's CPU per request (µs) */
  cpu: number;
}

let baselineCache: Baseline | undefined;
async function baseline(): Promise<Baseline> {
  if (baselineCache) return baselineCache;
  const script = `
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    const answer = JSON.stringify({ machineId: 'm-0', tier: 'stable', offered: [], revoked: [], nextCheckinSeconds: 600 });
    app.post('/v1/checkin', async (req, reply) => reply.type('application/json').send(answer));
    await app.listen({ host: '127.0.0.1', port: 0 });
    process.stdout.write('http://127.0.0.1:' + app.server.address().port + '\\n');
    process.on('SIGTERM', () => app.close().then(() => process.exit(0)));`;
  const { child, url } = await spawnChild(script);
  const target = { url, dir: await mkdtemp(join(tmpdir(), 'suture-bench-')) };
  try {
    const body = checkinBody(undefined);
    await load(target, body, 2);
    const { load: r, cpu } = await measured({ server: [child.pid ?? 0] }, () =>
      load(target, body, DURATION_S),
    );
    baselineCache = { rate: r.rate, p99: r.p99, cpu: cpu.server };
    return baselineCache;
  } finally {
    await stopChild(child);
    await rm(target.dir, { recursive: true, force: true });
  }
}

const NO_WRK = 'wrk is not installed (apt-get install wrk; scripts/setup.sh installs it)';

export const benchmarks: Benchmark[] = [
  {
    name: 'checkin-sqlite',
    async run(ctx) {
      if (!findWrk()) return ctx.skip(NO_WRK);
      await runEngine(ctx, 'SQLite', await baseline());
    },
  },
  {
    name: 'checkin-postgres',
    async run(ctx) {
      if (!findPostgres()) return ctx.skip('PostgreSQL is not installed (apt-get install postgresql)');
      if (!findWrk()) return ctx.skip(NO_WRK);
      await runEngine(ctx, 'PostgreSQL', await baseline());
    },
  },
  {
    // `suture server --workers N` on one PostgreSQL: one worker per core (at least two)
    name: 'checkin-postgres-workers',
    async run(ctx) {
      if (!findPostgres()) return ctx.skip('PostgreSQL is not installed (apt-get install postgresql)');
      if (!findWrk()) return ctx.skip(NO_WRK);
      await runEngine(ctx, 'PostgreSQL', await baseline(), Math.max(2, availableParallelism()));
    },
  },
];

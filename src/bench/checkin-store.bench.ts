/*
 * The store's check-in alone on PostgreSQL, without HTTP: sixteen callers whose check-ins arrive one
 * per event-loop turn (as requests over sockets do) share batches and statements (store/checkins.ts),
 * against one caller at a time, a round trip and a statement per check-in. Both over the 100,000
 * machines of server.bench.ts; each check-in's time to its answer (p99), and CPU per check-in of this
 * process and of PostgreSQL from /proc.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { hashSecret } from '../server/credentials.js';
import { openStore, type Store } from '../server/store.js';
import { BUILD_ID, RELEASE } from '../server/testing/fleet-fixture.js';
import { findPostgres, startPostgres } from '../server/testing/postgres-fixture.js';
import type { Benchmark } from './harness.js';
import { childrenOf, cpuMs } from './process-cpu.js';
import { credential, MACHINES, postmasterPid, seed } from './server.bench.js';

const SECONDS = Number(process.env.SUTURE_BENCH_SECONDS ?? '10');
const req = {
  kernel: { release: RELEASE, buildId: BUILD_ID },
  hostname: 'bench-host',
  agentVersion: 'bench',
  patches: [],
};

interface Run {
  rate: number;
  /** 99th percentile of one check-in's time in the store, from the call to its answer (ms) */
  p99: number;
  /** CPU per check-in, µs */
  node: number;
  database: number;
}

async function drive(store: Store, callers: number, seconds: number, postmaster?: number): Promise<Run> {
  const hashes = Array.from({ length: MACHINES }, (_, i) => hashSecret(credential(i)));
  const db = () => (postmaster ? cpuMs([postmaster, ...childrenOf(postmaster)]) : 0);
  let next = 0;
  let done = 0;
  const took: number[] = [];
  const d0 = db();
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        const m = await store.checkin(hashes[next++ % MACHINES] as string, req, new Date().toISOString());
        took.push(performance.now() - t);
        if (!m) throw new Error('a seeded machine did not authenticate');
        done++;
        await nextTurn();
      }
    }),
  );
  const c = process.cpuUsage(c0);
  took.sort((a, b) => a - b);
  return {
    rate: done / ((Date.now() - t0) / 1000),
    p99: took[Math.min(took.length - 1, Math.floor(took.length * 0.99))] ?? 0,
    node: (c.user + c.system) / done,
    database: ((db() - d0) * 1000) / done,
  };
}

const note = (r: Run) =>
  `p99 ${r.p99.toFixed(1)} ms; CPU per check-in: this process ${r.node.toFixed(0)} µs, PostgreSQL ${r.database.toFixed(0)} µs`;

export const benchmarks: Benchmark[] = [
  {
    name: 'postgres-batched',
    async run(ctx) {
      if (!findPostgres()) return ctx.skip('PostgreSQL is not installed (apt-get install postgresql)');
      const cluster = await startPostgres();
      try {
        const url = await cluster.createDatabase('bench');
        await seed(url);
        const store = await openStore(url);
        try {
          const pm = postmasterPid(cluster.dir);
          await drive(store, 16, 1, pm); // warm-up
          const batched = await drive(store, 16, SECONDS, pm);
          const single = await drive(store, 1, SECONDS, pm);
          ctx.report({
            name: 'store check-ins/s on PostgreSQL, 16 callers sharing batches (higher is better)',
            ours: batched.rate,
            unit: '/s',
            baseline: { name: 'one caller, a statement each', value: single.rate },
            goal: { value: 10_000, lowerIsBetter: false, text: '≥ 10000 /s at 100,000 machines' },
            note: `${note(batched)}; one caller: ${note(single)}`,
          });
          ctx.report({
            name: 'store check-in p99 on PostgreSQL, 16 callers sharing batches',
            ours: batched.p99,
            unit: 'ms',
            baseline: { name: 'one caller, a statement each', value: single.p99 },
            goal: { value: 20, text: '< 20 ms' },
          });
        } finally {
          await store.close();
        }
      } finally {
        cluster.stop();
      }
    },
  },
];

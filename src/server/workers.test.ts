/*
 * `suture server --workers N` (workers.ts): N server processes on one port and one PostgreSQL database.
 *   - a first start makes one admin token, whichever worker it reached, and every worker signs with the
 *     one key;
 *   - check-ins over fresh connections are served by every worker (each worker's own CPU time grows);
 *   - a worker killed with SIGKILL is replaced, and every connection then reaches a live worker;
 *   - close() ends every worker; SQLite and a bad count are refused before anything starts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { machineApi } from '../manifest/protocol.js';
import { AdminClient } from './admin-client.js';
import { FakeMachine } from './testing/fleet-fixture.js';
import { findPostgres, type PostgresCluster, startPostgres } from './testing/postgres-fixture.js';
import { startWorkers, type WorkerPool } from './workers.js';

/** user + system clock ticks of a process (/proc/PID/stat fields 14 and 15) */
function ticks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** one check-in on a connection of its own (the cluster hands connections to workers in turn) */
function checkinAlone(url: string, credential: string): Promise<number> {
  const body = JSON.stringify({
    kernel: { release: '6.1.0-53-cloud-amd64', buildId: '1f2e3d4c5b6a79880123456789abcdef01234567' },
    hostname: 'host-w',
    agentVersion: 'test',
    patches: [],
  });
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${machineApi.checkin}`,
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
    req.end(body);
  });
}

describe('server workers on one PostgreSQL database', () => {
  let skip: string | undefined;
  let cluster: PostgresCluster | undefined;
  let dir: string;
  let database: string;
  let pool: WorkerPool | undefined;

  before(async () => {
    if (!findPostgres()) {
      skip = 'PostgreSQL is not installed (apt-get install postgresql); CI installs it';
      return;
    }
    cluster = await startPostgres();
    database = await cluster.createDatabase('workers');
    dir = await mkdtemp(join(tmpdir(), 'suture-workers-'));
  });
  after(async () => {
    await pool?.close();
    cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('two workers share the port, the admin token and the key; each serves; one killed is replaced', async (t) => {
    if (skip) return t.skip(skip);
    const limits = { checkinPerMinute: 10_000 }; // 320 check-ins of one machine in seconds
    pool = await startWorkers({ dataDir: join(dir, 'data'), database, logger: false, limits }, 2);
    assert.equal(pool.pids.length, 2);
    assert.notEqual(pool.pids[0], pool.pids[1]);
    assert.ok(pool.createdAdminToken, 'a first start creates the admin token');
    assert.equal(
      (await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim(),
      pool.createdAdminToken,
      'one token: the second worker found the first one’s',
    );
    const admin = new AdminClient({ server: pool.url, adminToken: pool.createdAdminToken });
    const token = (await admin.createToken({ tier: 'stable' })).token;
    const machine = new FakeMachine(pool.url, 'host-w');
    const enrolled = await machine.enroll(token);
    assert.equal(enrolled.serverPublicKey, pool.publicKey);
    const credential = enrolled.credential;

    const before = pool.pids.map(ticks);
    for (let i = 0; i < 300; i++) assert.equal(await checkinAlone(pool.url, credential), 200);
    const spent = pool.pids.map((pid, i) => ticks(pid) - (before[i] as number));
    const total = spent.reduce((a, b) => a + b, 0);
    assert.ok(total > 0, 'the check-ins cost the workers CPU');
    for (const [i, s] of spent.entries())
      assert.ok(s >= total * 0.2, `worker ${i} served its share of connections (${s} of ${total} ticks)`);

    // a connection handed to the worker as it dies is lost (the agent's timeout and retry cover it);
    // once the primary has seen the exit, every connection reaches a live worker
    const killed = pool.pids[0] as number;
    process.kill(killed, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    while (pool.pids[0] === killed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(pool.pids[0], killed, 'the killed worker was replaced');
    assert.ok(alive(pool.pids[0] as number));
    for (let i = 0; i < 20; i++) assert.equal(await checkinAlone(pool.url, credential), 200);
    assert.equal((await machine.checkin()).machineId, enrolled.machineId);

    const pids = [...pool.pids];
    await pool.close();
    pool = undefined;
    for (const pid of pids) assert.ok(!alive(pid), `worker ${pid} ended with close()`);
  });

  test('SQLite and a bad worker count are refused before anything starts', async () => {
    for (const [workers, database, text] of [
      [2, undefined, /needs PostgreSQL/],
      [0, 'postgres://x/y', /from 1 to 64/],
      [1.5, 'postgres://x/y', /from 1 to 64/],
    ] as const) {
      await assert.rejects(
        startWorkers({ dataDir: join(tmpdir(), 'never-made'), ...(database ? { database } : {}) }, workers),
        (e: unknown) => isSutureError(e) && e.diagnostic.code === 'SERVER-WORKERS' && text.test(e.message),
      );
    }
  });
});

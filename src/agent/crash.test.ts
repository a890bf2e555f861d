/*
 * kill -9 at the worst moments: the real daemon runs as a child process (testing/agent-child.ts, the
 * same runDaemon as `suture agent run`) on a pretend kernel kept in a file, so the kernel's truth
 * outlives the killed agent. Killed mid-download and mid-apply, restarted, it must converge: the
 * patch applied exactly once, recorded and reported.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Manifest } from '../manifest/manifest.js';
import { fakeModule } from '../server/testing/fleet-fixture.js';
import { enroll } from './enroll.js';
import { loadState } from './state.js';
import { FileKernel } from './testing/file-kernel.js';
import { startFleetBackend } from './testing/fleet-backend.js';
import { TamperProxy } from './testing/tamper-proxy.js';

const CHILD = fileURLToPath(new URL('./testing/agent-child.js', import.meta.url));
const RELEASE = '6.1.0-53-cloud-amd64';
const BUILD_ID = '0123456789abcdef0123456789abcdef01234567';

const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of cleanups.splice(0).reverse()) await c();
});

function startChild(
  stateDir: string,
  kernelFile: string,
): { child: ChildProcess; out: () => string; waitFor: (re: RegExp, ms?: number) => Promise<void> } {
  const child = spawn(process.execPath, [CHILD, stateDir, kernelFile, '0.2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const waitFor = async (re: RegExp, ms = 15_000) => {
    const t0 = Date.now();
    while (!re.test(out)) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re}; agent said:\n${out}`);
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, out: () => out, waitFor };
}

async function killed(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function setup(moduleBytes: number) {
  const backend = await startFleetBackend();
  cleanups.push(() => backend.stop());
  const proxy = new TamperProxy(backend.url);
  await proxy.up();
  cleanups.push(() => proxy.down());
  const dir = mkdtempSync(join(tmpdir(), 'suture-agent-crash-'));
  const stateDir = join(dir, 'state');
  const kernelFile = join(dir, 'kernel.json');
  const kernel = FileKernel.create(kernelFile, { release: RELEASE, buildId: BUILD_ID, transitionMs: 5000 });
  await enroll({
    stateDir,
    token: await backend.createToken('stable'),
    server: proxy.url,
    hostname: 'crash',
    kernel,
  });
  const ko = join(dir, 'livepatch-cmdline.ko');
  // a module publish accepts (ELF, .modinfo): the fake kernel never runs it
  const bytes = fakeModule(moduleBytes, {
    name: 'livepatch_cmdline',
    livepatch: 'Y',
    vermagic: `${RELEASE} SMP `,
  });
  writeFileSync(ko, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifest: Manifest = {
    schema: 1,
    name: 'cmdline',
    version: '1',
    kernel: { release: RELEASE, buildId: BUILD_ID },
    replace: false,
    objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, change: 'changed' }] }],
    module: { file: 'livepatch-cmdline.ko', sha256, name: 'livepatch_cmdline' },
    source: {},
    cves: [],
    tool: { name: 'suture', version: '0.1.0' },
  };
  const id = await backend.publish(ko, manifest, 'stable');
  return { backend, proxy, stateDir, kernelFile, kernel, id, sha256 };
}

test('killed mid-apply (module loaded, transition running): the restart records it, never loads it again', async () => {
  const t = await setup(4096);
  const a = startChild(t.stateDir, t.kernelFile);
  await a.waitFor(/applying cmdline 1/);
  await until('the kernel has loaded it', () => t.kernel.read().loads.length === 1);
  await killed(a.child);
  const mid = loadState(t.stateDir);
  assert.equal(mid.intent?.op, 'apply', 'the journal says an apply was in flight');
  assert.equal(mid.patches[t.id], undefined, 'its outcome was never recorded');

  const b = startChild(t.stateDir, t.kernelFile);
  await b.waitFor(/interrupted apply of cmdline: the kernel has livepatch_cmdline loaded/);
  await until('recorded as applied', () => loadState(t.stateDir).patches[t.id]?.outcome === 'applied');
  const machineId = mid.enrollment?.machineId as string;
  for (let i = 0; i < 200 && (await t.backend.machineState(machineId, t.id)) !== 'applied'; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(await t.backend.machineState(machineId, t.id), 'applied', 'the server learnt it');
  await new Promise((r) => setTimeout(r, 600)); // a few more check-ins
  await killed(b.child);
  assert.equal(t.kernel.read().loads.length, 1, 'loaded exactly once');
  assert.equal(loadState(t.stateDir).intent, null);
});

test('killed mid-download: nothing loaded, no module kept; the restart downloads, verifies and applies once', async () => {
  const t = await setup(256 * 1024);
  t.proxy.hooks.slowModule = { chunk: 8192, delayMs: 40 }; // ~1.3 s for the module
  const a = startChild(t.stateDir, t.kernelFile);
  await a.waitFor(/downloading cmdline 1/);
  await new Promise((r) => setTimeout(r, 300));
  await killed(a.child);
  const modules = join(t.stateDir, 'modules');
  assert.equal(
    existsSync(join(modules, `${t.sha256}.ko`)),
    false,
    'a partial download is never taken for the module',
  );
  assert.deepEqual(t.kernel.read().loads, []);
  assert.equal(loadState(t.stateDir).intent, null);

  t.proxy.hooks.slowModule = undefined;
  const b = startChild(t.stateDir, t.kernelFile);
  await until('applied', () => loadState(t.stateDir).patches[t.id]?.outcome === 'applied');
  await killed(b.child);
  assert.equal(t.kernel.read().loads.length, 1);
  assert.equal(t.kernel.read().loads[0]?.sha256, t.sha256, 'the complete, verified module was loaded');
  assert.deepEqual(readdirSync(modules), [`${t.sha256}.ko`]);
});

test('a second daemon on the same state directory is refused while the first runs', async () => {
  const t = await setup(1024);
  const a = startChild(t.stateDir, t.kernelFile);
  await a.waitFor(/check-in ok/);
  const b = startChild(t.stateDir, t.kernelFile);
  const code = await new Promise<number | null>((r) => b.child.once('exit', (c) => r(c)));
  assert.notEqual(code, 0);
  assert.match(b.out(), /AGENT-ALREADY-RUNNING|already running/);
  await killed(a.child);
  // after kill -9 the pid file is stale and a new daemon takes over
  const c = startChild(t.stateDir, t.kernelFile);
  await c.waitFor(/check-in ok/);
  await killed(c.child);
});

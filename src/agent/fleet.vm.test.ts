/*
 * The fleet, end to end: the real server on the host's loopback, two QEMU VMs on the exact target
 * kernel, each running the real agent (`suture agent enable` + `suture agent run`) — one enrolled with
 * a canary token, one with a stable token. From the guests the host's loopback is 10.0.2.2 (QEMU user
 * networking). The patch is the blog's: cmdline_proc_show replaced so /proc/cmdline shows a marker,
 * hand-written here and built with kbuild against the target's prepared tree, with a manifest carrying
 * the kernel's release and vmlinux build id.
 *
 *   publish to canary → only the canary VM applies it (the stable VM keeps checking in, untouched)
 *   promote to stable → both apply it
 *   revoke            → both revert it (the module leaves /sys/kernel/livepatch, /proc/cmdline is back)
 *
 * After each step the dashboard is asserted in headless Chromium and a screenshot is kept under
 * artifacts/agent/.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { buildModule } from '../klp/kbuild.js';
import type { Manifest } from '../manifest/manifest.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../server/testing/chromium.js';
import { bootVm, type VmSession } from '../vm/index.js';
import { markerLivepatch } from '../vm/testing/fixtures.js';
import { type ServerBackend, startFleetBackend } from './testing/fleet-backend.js';

const MARK = 'suture-fleet-livepatch';
/** /proc/cmdline shows MARK while the fleet's livepatch is applied. */
const SOURCE = markerLivepatch(MARK);

const ARTIFACTS = join(process.cwd(), 'artifacts', 'agent');

interface Machine {
  name: 'canary' | 'stable';
  vm: VmSession;
  id: string;
}

let kernel: KernelTarget;
let work: string;
let ko: string;
let manifest: Manifest;
let server: ServerBackend;
let browser: Browser | undefined;
let page: Page;
const machines: Machine[] = [];
let patchId: string;

async function sh(vm: VmSession, cmd: string, timeoutMs = 120_000): Promise<string> {
  const r = await vm.exec(cmd, { timeoutMs });
  assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
  assert.equal(r.exitCode, 0, `${cmd} exited ${r.exitCode}:\n${r.output}`);
  return r.output.replaceAll('\r', '');
}

async function agentLog(m: Machine): Promise<string> {
  return (
    await m.vm.exec('cat /tmp/agent.log', { timeoutMs: 30_000 }).catch(() => ({ output: '(unreadable)' }))
  ).output;
}

/** Poll until `check` holds on the guest, or fail with the agent's log. */
async function eventually(
  m: Machine,
  what: string,
  check: () => Promise<boolean>,
  ms = 240_000,
): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms)
      assert.fail(
        `${m.name}: timed out after ${ms} ms waiting until ${what}\nagent log:\n${await agentLog(m)}`,
      );
    await new Promise((r) => setTimeout(r, 1500));
  }
}

const cmdline = async (m: Machine) => (await sh(m.vm, 'cat /proc/cmdline')).trim();
const livepatches = async (m: Machine) => (await sh(m.vm, 'ls /sys/kernel/livepatch')).trim();

async function agentStatus(m: Machine): Promise<{
  patchState: { code: string; text: string };
  serverCheckin: { state: string };
  patchVersion: string | null;
  lastCheck: string | null;
}> {
  const out = await sh(m.vm, 'suture agent status --format json');
  return JSON.parse(out.slice(out.indexOf('{')));
}

async function checkins(m: Machine): Promise<number> {
  return (await server.admin<{ checkins: number }>('GET', `/admin/v1/machines/${m.id}`)).checkins;
}

/** Wait until the machine has checked in at least `n` more times (so it has seen the server's latest). */
async function checksInAgain(m: Machine, n = 2): Promise<void> {
  const from = await checkins(m);
  await eventually(m, `${n} more check-ins`, async () => (await checkins(m)) >= from + n, 120_000);
}

async function dashboard(step: string): Promise<string> {
  await page.goto(`${server.url}/`, { waitUntil: 'load' });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `fleet-${step}.png`), fullPage: true });
  return page.content();
}

/** The visible text of an element, whitespace collapsed. */
async function text(selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

/** A table row's cells, space-separated. */
async function row(selector: string): Promise<string> {
  const cells = await page.locator(`${selector} td`).allTextContents();
  return cells.map((c) => c.replace(/\s+/g, ' ').trim()).join(' ');
}

const machineRow = (m: Machine) => row(`tr[data-machine="${m.id}"]`);

describe('fleet: server + two agents in VMs, canary → stable → revoke', { timeout: 1_500_000 }, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    work = mkdtempSync(join(tmpdir(), 'suture-fleet-vm-'));
    const dir = join(work, 'livepatch-fleet');
    mkdirSync(dir);
    writeFileSync(join(dir, 'livepatch-fleet.c'), SOURCE);
    writeFileSync(join(dir, 'Kbuild'), 'obj-m := livepatch-fleet.o\n');
    ko = (await buildModule(dir, kernel)).ko;
    manifest = {
      schema: 1,
      name: 'fleet',
      version: '1',
      kernel: { release: kernel.release, buildId: kernel.buildId, debianVersion: kernel.debianVersion },
      replace: false,
      objects: [
        {
          name: 'vmlinux',
          functions: [{ name: 'cmdline_proc_show', sympos: 0, file: 'fs/proc/cmdline.c', change: 'changed' }],
        },
      ],
      module: {
        file: 'livepatch-fleet.ko',
        sha256: createHash('sha256').update(readFileSync(ko)).digest('hex'),
        name: 'livepatch_fleet',
      },
      source: { description: 'the blog example: /proc/cmdline shows that the livepatch is live' },
      cves: [],
      tool: { name: 'suture', version: '0.1.0' },
    };
    server = await startFleetBackend({ host: '127.0.0.1', checkinIntervalSeconds: 2 });
    const tokens = { canary: await server.createToken('canary'), stable: await server.createToken('stable') };

    const vms = await Promise.all(
      (['canary', 'stable'] as const).map((name) =>
        bootVm({ kernel, withSuture: true, net: true, timeoutMs: 1_500_000 }).then((vm) => ({ name, vm })),
      ),
    );
    for (const { name, vm } of vms) {
      await sh(vm, `hostname fleet-${name}`);
      const out = await sh(
        vm,
        `suture agent enable ${tokens[name]} --server http://10.0.2.2:${server.port}`,
        180_000,
      );
      const id = /enrolled as (m-[0-9a-f]{16})/.exec(out)?.[1];
      assert.ok(id, out);
      assert.match(out, new RegExp(`tier ${name}`));
      await sh(vm, 'setsid suture agent run --interval 2s > /tmp/agent.log 2>&1 < /dev/null &');
      machines.push({ name, vm, id });
    }
    for (const m of machines) {
      await eventually(m, 'the first check-in', async () => (await checkins(m)) >= 1);
      assert.ok(!(await cmdline(m)).includes(MARK));
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${server.url}/login`);
    await page.fill('input[name=token]', server.adminToken);
    await Promise.all([page.waitForURL(`${server.url}/`), page.click('button[type=submit]')]);
  });

  after(async () => {
    await browser?.close();
    await Promise.all(machines.map((m) => m.vm.close()));
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const canary = () => machines.find((m) => m.name === 'canary') as Machine;
  const stable = () => machines.find((m) => m.name === 'stable') as Machine;

  test('before any patch: both agents check in, the server has nothing for their kernel', async () => {
    for (const m of machines) {
      const s = await agentStatus(m);
      assert.equal(s.serverCheckin.state, 'succeeded');
      assert.equal(
        s.patchState.text,
        `unsupported: the server has no patch for ${kernel.release} nor any kernel of its flavour`,
      );
    }
    await dashboard('0-enrolled');
    assert.equal(await text('#card-machines b'), '2');
    for (const m of machines)
      assert.match(await machineRow(m), new RegExp(`^fleet-${m.name} ${m.name} .*no patch`));
  });

  test('published to canary: only the canary machine applies it', async () => {
    patchId = await server.publish(ko, manifest, 'canary');
    await eventually(canary(), '/proc/cmdline shows the livepatch', async () =>
      (await cmdline(canary())).includes(MARK),
    );
    assert.equal(await livepatches(canary()), 'livepatch_fleet');
    await eventually(
      canary(),
      'the agent reports all inserted',
      async () => (await agentStatus(canary())).patchState.code === 'applied',
    );
    assert.equal((await agentStatus(canary())).patchVersion, 'fleet 1');
    const text = await sh(canary().vm, 'suture agent status');
    assert.ok(text.split('\n').includes(`kernel: ${kernel.release}`), text);
    assert.match(text, /^server check-in: succeeded$/m);
    assert.match(text, /^patch state: ✓ all applicable livepatch modules inserted$/m);
    assert.match(text, /^patch version: fleet 1$/m);
    // the stable machine keeps checking in and is offered nothing
    await checksInAgain(stable());
    assert.ok(!(await cmdline(stable())).includes(MARK));
    assert.equal(await livepatches(stable()), '');
    assert.equal(
      (await agentStatus(stable())).patchState.text,
      `nothing to apply: the server has patches for ${kernel.release}, none offered to this machine (tier stable)`,
    );
    await eventually(
      canary(),
      'the server has the report',
      async () => (await server.machineState(canary().id, patchId)) === 'applied',
    );

    await dashboard('1-canary');
    assert.match(await machineRow(canary()), /canary .*applied/);
    assert.match(await machineRow(stable()), /stable .*no patch/);
    assert.match(await row(`tr[data-patch="${patchId}"]`), /canary/);
  });

  test('promoted to stable: both machines apply it', async () => {
    await server.promote(patchId, 'stable');
    await eventually(stable(), '/proc/cmdline shows the livepatch', async () =>
      (await cmdline(stable())).includes(MARK),
    );
    for (const m of machines) {
      assert.equal(await livepatches(m), 'livepatch_fleet');
      await eventually(m, 'all inserted', async () => (await agentStatus(m)).patchState.code === 'applied');
      await eventually(
        m,
        'the server has the report',
        async () => (await server.machineState(m.id, patchId)) === 'applied',
      );
    }
    // applied once each: the canary machine did not load it again
    const dmesg = await sh(canary().vm, 'dmesg | grep -c "enabling patch .livepatch_fleet." || true');
    assert.equal(dmesg.trim(), '1');

    await dashboard('2-stable');
    for (const m of machines) assert.match(await machineRow(m), new RegExp(`${m.name} .*applied`));
    assert.equal(await text('#card-applied b'), '2');
  });

  test('revoked: both machines revert it', async () => {
    await server.revoke(patchId);
    for (const m of machines) {
      await eventually(m, '/proc/cmdline is back', async () => !(await cmdline(m)).includes(MARK));
      await eventually(m, 'the livepatch is gone', async () => (await livepatches(m)) === '');
      await eventually(
        m,
        'the server has the revert',
        async () => (await server.machineState(m.id, patchId)) === 'reverted',
      );
      const s = await agentStatus(m);
      assert.equal(s.serverCheckin.state, 'succeeded');
      assert.equal(s.patchVersion, null);
      assert.ok(!/livepatch_fleet/.test(await sh(m.vm, 'cat /proc/modules')), 'the module was unloaded');
    }
    await dashboard('3-revoked');
    for (const m of machines) assert.doesNotMatch(await machineRow(m), /applied/);
    assert.match(await row(`tr[data-patch="${patchId}"]`), /revoked/i);
  });
});

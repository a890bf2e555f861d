/*
 * The agent's kernel port over the real host layer (src/host/) on the host's fake sysfs/procfs kernel:
 * identity, apply with a complete transition, a stalled transition reported with its blocking task
 * and the machine left as before, revert.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeKernel } from '../host/testing/fake-kernel.js';
import type { Manifest } from '../manifest/manifest.js';
import { hostKernel } from './host-binding.js';
import { manifestFor as rigManifest } from './testing/agent-rig.js';

const kernels: FakeKernel[] = [];
after(() => {
  for (const k of kernels.splice(0)) k.dispose();
});
function fake(o: ConstructorParameters<typeof FakeKernel>[0] = {}): FakeKernel {
  const k = new FakeKernel({ signalEvery: 5, tickMs: 20, ...o });
  kernels.push(k);
  return k;
}

/** The rig's manifest for a module replacing `fn` in `object`, without CVEs. */
function manifestFor(
  k: FakeKernel,
  file: string,
  moduleName: string,
  fn: string,
  object = 'vmlinux',
): Manifest {
  const objects = [{ name: object, functions: [{ name: fn, sympos: 0, change: 'changed' as const }] }];
  return rigManifest(k, file, moduleName, { objects, cves: [] });
}

test('running kernel identity and livepatch support come from the host layer', async () => {
  const k = fake();
  assert.deepEqual(await hostKernel(k.roots).runningKernel(), {
    release: k.release,
    buildId: k.buildId,
    livepatchSupported: true,
  });
  const without = fake({ livepatch: false });
  assert.equal((await hostKernel(without.roots).runningKernel()).livepatchSupported, false);
});

test('apply completes, the patch is listed, revert removes it', async () => {
  const k = fake();
  k.specs.set('livepatch_cmdline', { objects: { vmlinux: ['cmdline_proc_show'] } });
  const file = k.writeModule('livepatch_cmdline');
  const port = hostKernel(k.roots);
  const r = await port.apply({
    module: file,
    manifest: manifestFor(k, file, 'livepatch_cmdline', 'cmdline_proc_show'),
    timeoutMs: 5000,
  });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepEqual(await port.listLivepatches(), [
    { name: 'livepatch_cmdline', enabled: true, transition: false },
  ]);
  const v = await port.revert({ moduleName: 'livepatch_cmdline', timeoutMs: 5000 });
  assert.equal(v.ok, true, JSON.stringify(v));
  assert.deepEqual(await port.listLivepatches(), []);
  assert.ok(!existsSync(join(k.roots.sys, 'module/livepatch_cmdline')));
});

test('a stalled transition is reported with the blocking task and its stack, and rolled back', async () => {
  const k = fake();
  k.addTask({
    pid: 77,
    comm: 'stall_sleeper',
    kthread: true,
    holds: ['stall_sleeper_wait'],
    stack: ['[<0>] msleep_interruptible+0x29/0x50', '[<0>] stall_sleeper_wait+0x15/0x30 [suture_stall]'],
  });
  k.specs.set('livepatch_stall', { objects: { suture_stall: ['stall_sleeper_wait'] } });
  const file = k.writeModule('livepatch_stall');
  const r = await hostKernel(k.roots).apply({
    module: file,
    manifest: manifestFor(k, file, 'livepatch_stall', 'stall_sleeper_wait', 'suture_stall'),
    timeoutMs: 600,
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.code, 'HOST-TRANSITION-TIMEOUT');
  assert.equal(r.rolledBack, true);
  assert.deepEqual(
    r.stall?.tasks.map((t) => [t.pid, t.comm]),
    [[77, 'stall_sleeper']],
  );
  assert.ok(r.stall?.tasks[0]?.stack.some((l) => l.startsWith('>> ') && l.includes('stall_sleeper_wait')));
  assert.ok(!existsSync(join(k.roots.sys, 'module/livepatch_stall')), 'the machine is as it was');
});

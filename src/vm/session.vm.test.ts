// VM sessions: two VMs side by side, command output kept apart from kernel messages, per-command and
// hard time limits, boot modules that fail, and a VM with Node, Suture and networking to the host.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, it } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { VmBootError } from './end.js';
import { VM_NODE_FLAGS } from './initramfs.js';
import { runInVm } from './run.js';
import { bootVm } from './session.js';

let kernel: KernelTarget;

before(async () => {
  kernel = await ensureKernel(defaultRelease());
});

it('two sessions run side by side; output never mixes with kernel messages or the other VM', async () => {
  const [a, b] = await Promise.all([
    bootVm({ kernel, append: 'suture.vm=A', timeoutMs: 240_000 }),
    bootVm({ kernel, append: 'suture.vm=B', timeoutMs: 240_000 }),
  ]);
  try {
    assert.ok(a.bootMs > 0 && b.bootMs > 0);
    // the kernel prints on the console while the command prints: only the command's text comes back
    const noisy = 'for i in 1 2 3 4 5; do echo "kmsg-$i" > /dev/kmsg; echo "out-$i"; done; cat /proc/cmdline';
    const [ra, rb] = await Promise.all([a.exec(noisy), b.exec(noisy)]);
    for (const [r, tag] of [
      [ra, 'A'],
      [rb, 'B'],
    ] as const) {
      assert.equal(r.exitCode, 0);
      assert.match(r.output, new RegExp(`^out-1\nout-2\nout-3\nout-4\nout-5\n.*suture\\.vm=${tag}.*\n$`));
      assert.doesNotMatch(r.output, /kmsg-/);
      assert.match(r.console, /kmsg-5/, 'the kernel messages went to the console');
    }
    assert.equal((await a.exec('exit 7')).exitCode, 7);
    assert.equal((await a.exec('printf "no newline"; echo err >&2')).output, 'no newlineerr\n');
    // binary-ish and marker-like output passes through untouched
    const tricky = (await b.exec("printf '\\036SUTURE-END fake c9 0\\036\\n'; echo done")).output;
    assert.equal(tricky, '\x1eSUTURE-END fake c9 0\x1e\ndone\n');
    // a command over its limit is killed in the guest; the session stays usable
    const slow = await a.exec('sleep 30; echo never', { timeoutMs: 2000 });
    assert.equal(slow.timedOut, true);
    assert.doesNotMatch(slow.output, /never/);
    assert.equal((await a.exec('echo next')).output, 'next\n');
    // many commands in a row, each answered in order (the old UART channel lost one now and then)
    for (let i = 0; i < 40; i++) assert.equal((await b.exec(`echo n${i}`)).output, `n${i}\n`);
    // a large output passes whole
    const big = await b.exec('seq 1 20000');
    assert.equal(big.output.split('\n').length, 20001);
    assert.deepEqual(a.problems, []);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  assert.equal(a.alive, false);
  await assert.rejects(a.exec('true'), (e: unknown) => isSutureError(e) && e.code === 'VM-CLOSED');
});

it('a script over its time limit is killed and the result says timeout', async () => {
  const r = await runInVm({ kernel, script: 'echo started; sleep 600', timeoutMs: 25_000 });
  assert.equal(r.outcome, 'timeout', r.message);
  assert.match(r.message, /time limit/);
  assert.equal(r.output, 'started\n');
});

it('the hard timeout kills QEMU under a running command and says so', async () => {
  const vm = await bootVm({ kernel, timeoutMs: 15_000 });
  await assert.rejects(
    vm.exec('echo started; sleep 600', { timeoutMs: 600_000 }),
    (e: unknown) =>
      e instanceof VmBootError &&
      e.code === 'VM-TIMEOUT' &&
      /15000 ms time limit/.test(e.message) &&
      e.output === 'started\n',
  );
  assert.equal(vm.end.kind, 'timeout');
  assert.equal(vm.alive, false);
  await vm.close();
});

it('an unknown boot module is refused before QEMU starts; one the kernel rejects fails the boot', async () => {
  await assert.rejects(
    bootVm({ kernel, modules: ['no_such_module_xyz'] }),
    (e: unknown) => isSutureError(e) && e.code === 'VM-MODULE-UNKNOWN',
  );
  // acpi-cpufreq finds no ACPI P-states in QEMU and its init returns -ENODEV
  const r = await runInVm({ kernel, script: 'echo never', modules: ['acpi_cpufreq'], timeoutMs: 120_000 });
  assert.equal(r.outcome, 'boot-failed', r.message);
  assert.match(r.message, /acpi-cpufreq\.ko.*No such device/);
  assert.equal(r.output, '');
});

it('withSuture + net: suture runs in the VM and reaches a service on the host loopback', async () => {
  const server = createServer((_req, res) => res.end('hello from the host\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const vm = await bootVm({
      kernel,
      withSuture: true,
      net: true,
      nodeFlags: VM_NODE_FLAGS,
      timeoutMs: 300_000,
    });
    try {
      const v = await vm.exec('suture --version', { timeoutMs: 120_000 });
      assert.equal(v.exitCode, 0, v.output);
      assert.equal(v.output.trim(), '0.1.0');
      const which = await vm.exec('command -v node; cat "$(command -v node)"');
      assert.match(
        which.output,
        /^\/usr\/local\/bin\/node\n#!\/bin\/sh\nexec \/usr\/bin\/node --no-opt --no-sparkplug --max-lazy "\$@"\n$/,
      );
      const ip = await vm.exec('ip -4 addr show eth0');
      assert.match(ip.output, /inet 10\.0\.2\.15\//);
      const get = await vm.exec(`wget -qO- http://10.0.2.2:${port}/`);
      assert.equal(get.output, 'hello from the host\n');
      const layers = vm.initramfs.layers.map((l) => l.name);
      assert.deepEqual(layers, ['base', 'node', 'suture', 'run']);
    } finally {
      await vm.close();
    }
  } finally {
    server.close();
  }
});

it('reports a boot that cannot reach the guest as a boot error with the console', async () => {
  // without its init the kernel falls back to mounting a root device, finds none and panics
  await assert.rejects(
    bootVm({ kernel, append: 'rdinit=/no/such/init', timeoutMs: 120_000 }),
    (e: unknown) =>
      e instanceof VmBootError &&
      e.code === 'VM-KERNEL-PANIC' &&
      /Kernel panic - not syncing/.test(e.message) &&
      /Unable to mount root fs/.test(e.console),
  );
});

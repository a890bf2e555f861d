/*
 * vm: how long a test waits for a VM, and how big the images are.
 *
 * - boot to first command: bootVm() until `exec('true')` returns, against a bare QEMU boot of the same
 *   kernel whose /init is busybox `poweroff -f` (the floor: kernel boot + unpacking busybox + power off,
 *   no harness). The ratio is what the harness adds (its init, module loading, the command channel).
 * - boot with Node: the same with withSuture, until `node -e 0` returns, against the boot without Node.
 * - `suture --version` in a VM through a node wrapper with VM_NODE_FLAGS (no optimising compilers)
 *   against plain node: what the flags buy under TCG (depends on host load; see initramfs.ts).
 * - initramfs layer sizes (compressed) against what they hold uncompressed, and assembling the Node
 *   image from a warm cache against building its layers cold.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { CpioArchive } from '../vm/cpio.js';
import { bootVm } from '../vm/index.js';
import { assembleInitramfs, BUSYBOX, nodeRuntimeFiles, VM_NODE_FLAGS } from '../vm/initramfs.js';
import { qemuArgs, spawnQemu } from '../vm/qemu.js';
import { sutureFiles, VM_SUTURE_DIR } from '../vm/suture-files.js';
import { type Benchmark, median, timeRuns } from './harness.js';

const MB = 1024 * 1024;

async function bareBoot(kernel: KernelTarget, initrd: string): Promise<void> {
  const args = qemuArgs({ vmlinuz: kernel.vmlinuz, initrd, memoryMb: 512, net: false, interactive: false });
  await new Promise<void>((resolve, reject) => {
    const c = spawnQemu(args, 'ignore');
    const t = setTimeout(() => c.kill('SIGKILL'), 120_000);
    c.once('error', reject);
    c.once('exit', (code) => {
      clearTimeout(t);
      code === 0 ? resolve() : reject(new Error(`bare QEMU exited ${code}`));
    });
  });
}

async function bootToCommand(kernel: KernelTarget, withSuture: boolean, cmd: string): Promise<void> {
  const vm = await bootVm({ kernel, withSuture, timeoutMs: 300_000 });
  try {
    const r = await vm.exec(cmd, { timeoutMs: 120_000 });
    if (r.exitCode !== 0) throw new Error(`${cmd} failed in the VM: ${r.output}`);
  } finally {
    await vm.close();
  }
}

const sum = (files: string[]) => files.reduce((n, f) => n + statSync(f).size, 0);

export const benchmarks: Benchmark[] = [
  {
    name: 'boot-to-first-command',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const work = mkdtempSync(join(tmpdir(), 'suture-vm-bench-'));
      try {
        const bare = join(work, 'bare.cpio.gz');
        await new CpioArchive()
          .hostFile('bin/busybox', BUSYBOX, 0o755)
          .file('init', '#!/bin/busybox sh\n/bin/busybox poweroff -f\n', 0o755)
          .dir('dev')
          .writeGzip(bare);
        await bootToCommand(kernel, false, 'true'); // warm the layer cache
        const ours = await timeRuns(ctx.runs, () => bootToCommand(kernel, false, 'true'));
        const base = await timeRuns(ctx.runs, () => bareBoot(kernel, bare));
        ctx.report({
          name: 'VM boot to first shell command',
          ours: median(ours),
          baseline: { name: 'bare QEMU boot to busybox poweroff', value: median(base) },
          note: `${ctx.runs} runs, TCG`,
        });
        await bootToCommand(kernel, true, 'node -e 0');
        const withNode = await timeRuns(ctx.runs, () => bootToCommand(kernel, true, 'node -e 0'));
        ctx.report({
          name: 'VM boot with Node to first `node -e 0`',
          ours: median(withNode),
          baseline: { name: 'VM boot to first shell command', value: median(ours) },
          note: `${ctx.runs} runs, cached layers`,
        });
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'node-in-vm',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const vm = await bootVm({ kernel, withSuture: true, nodeFlags: VM_NODE_FLAGS, timeoutMs: 900_000 });
      try {
        const timed = async (cmd: string) => {
          const r = await vm.exec(cmd, { timeoutMs: 300_000 });
          if (r.exitCode !== 0) throw new Error(`${cmd} failed in the VM: ${r.output}`);
        };
        const ours: number[] = [];
        const plain: number[] = [];
        for (let i = 0; i < ctx.runs; i++) {
          ours.push(...(await timeRuns(1, () => timed('suture --version'))));
          plain.push(
            ...(await timeRuns(1, () => timed(`/usr/bin/node ${VM_SUTURE_DIR}/bin/suture.js --version`))),
          );
        }
        ctx.report({
          name: '`suture --version` in the VM (node with VM_NODE_FLAGS)',
          ours: median(ours),
          baseline: { name: 'plain node', value: median(plain) },
          note: `${ctx.runs} runs each, alternating, one VM`,
        });
      } finally {
        await vm.close();
      }
    },
  },
  {
    name: 'initramfs',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const work = mkdtempSync(join(tmpdir(), 'suture-vm-bench-'));
      const saved = process.env.SUTURE_CACHE;
      try {
        // cold: a fresh cache, every layer built; warm: the same again
        process.env.SUTURE_CACHE = join(work, 'cache');
        let sizes: { name: string; bytes: number; gzip: boolean }[] = [];
        const assemble = async (i: number) => {
          const dir = join(work, `run${i}`);
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir);
          const img = await assembleInitramfs({
            kernel,
            guest: { nonce: 'bench', mode: 'agent', net: false },
            withSuture: true,
            workDir: dir,
          });
          sizes = img.layers.map((l) => ({ name: l.name, bytes: l.bytes, gzip: l.path.endsWith('.gz') }));
        };
        const cold = await timeRuns(1, () => assemble(0));
        const warm = await timeRuns(ctx.runs, () => assemble(1));
        ctx.report({
          name: 'assemble Node+Suture initramfs, warm cache',
          ours: median(warm),
          baseline: { name: 'cold (layers built)', value: median(cold) },
        });
        const raw: Record<string, number> = {
          base: statSync(BUSYBOX).size,
          node: sum(nodeRuntimeFiles()),
          suture: sum(await sutureFiles()),
        };
        for (const s of sizes) {
          ctx.report({
            name: `initramfs layer ${s.name} (${s.gzip ? 'gzip -1' : 'uncompressed'})`,
            ours: s.bytes / MB,
            unit: 'MB',
            ...(raw[s.name]
              ? { baseline: { name: 'uncompressed input', value: (raw[s.name] as number) / MB } }
              : {}),
          });
        }
        ctx.report({
          name: 'initramfs with Node and Suture, total',
          ours: sizes.reduce((n, s) => n + s.bytes, 0) / MB,
          unit: 'MB',
        });
      } finally {
        if (saved === undefined) delete process.env.SUTURE_CACHE;
        else process.env.SUTURE_CACHE = saved;
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
];

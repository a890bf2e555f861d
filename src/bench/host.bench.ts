/*
 * host: time from `suture apply` to "transition complete" for the blog's cmdline patch, in a VM on the
 * target kernel, against the bare way an operator would do it in the same VM: `insmod` then a shell
 * loop polling /sys/kernel/livepatch/<p>/transition every 50 ms. The difference is what Suture adds:
 * Node start-up, reading .modinfo, the identity checks, the kernel-log cursor and the task scans.
 * Both are timed inside the guest (date +%s%N around the command), alternating, with the patch
 * reverted (and unloaded) between runs. A second row compares the fake-kernel in-process apply (no
 * VM, no Node start-up) with the same polling loop emulated in-process, to isolate library overhead.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runKbuild } from '../build/livepatch-module.js';
import { applyLivepatch } from '../host/apply.js';
import { FakeKernel } from '../host/fake-kernel.js';
import { revertLivepatch } from '../host/revert.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { bootVm } from '../vm/index.js';
import { type Benchmark, median, timeRuns } from './harness.js';

const testdata = fileURLToPath(new URL('../../src/host/testdata/', import.meta.url));

async function guestMs(vm: Awaited<ReturnType<typeof bootVm>>, cmd: string): Promise<number> {
  const r = await vm.exec(
    `t0=$(date +%s%N); ${cmd} >/dev/null 2>&1; rc=$?; t1=$(date +%s%N); echo "$rc $(( (t1 - t0) / 1000 ))"`,
    { timeoutMs: 120_000 },
  );
  const [rc, us] = r.output.trim().split(/\s+/).slice(-2).map(Number);
  if (rc !== 0 || !Number.isFinite(us)) throw new Error(`${cmd} failed in the guest: ${r.output.trim()}`);
  return (us as number) / 1000;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'apply-cmdline-vm',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const work = mkdtempSync(join(tmpdir(), 'suture-host-bench-'));
      const dir = join(work, 'livepatch-cmdline');
      cpSync(join(testdata, 'livepatch-cmdline'), dir, { recursive: true });
      await runKbuild(kernel.sourceTree, dir);
      const vm = await bootVm({
        kernel,
        withSuture: true,
        files: [{ from: join(dir, 'livepatch-cmdline.ko'), to: '/m/livepatch-cmdline.ko' }],
      });
      try {
        const P = '/sys/kernel/livepatch/livepatch_cmdline';
        const bare = `insmod /m/livepatch-cmdline.ko && while [ "$(cat ${P}/transition)" != 0 ]; do sleep 0.05; done`;
        const undo = `echo 0 > ${P}/enabled; while [ -d ${P} ]; do sleep 0.05; done; until rmmod livepatch_cmdline 2>/dev/null; do sleep 0.05; done`;
        const ours: number[] = [];
        const base: number[] = [];
        for (let i = 0; i < ctx.runs + 1; i++) {
          const o = await guestMs(vm, 'suture apply /m/livepatch-cmdline.ko');
          await vm.exec(undo);
          const b = await guestMs(vm, bare);
          await vm.exec(undo);
          if (i > 0) {
            // the first pair warms the page cache (node binary, modules)
            ours.push(o);
            base.push(b);
          }
        }
        ctx.report({
          name: 'suture apply → transition complete, cmdline patch, in the VM',
          ours: median(ours),
          baseline: { name: 'insmod + 50 ms polling loop', value: median(base) },
          note: `${ours.length} runs each, QEMU TCG; ours includes Node start-up`,
        });
        const node = await guestMs(vm, 'node -e 0');
        ctx.report({ name: 'of which: Node start-up in the VM (node -e 0)', ours: node });
      } finally {
        await vm.close();
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'apply-library-fake-kernel',
    async run(ctx) {
      const k = new FakeKernel({ tickMs: 5 });
      try {
        for (let i = 0; i < 200; i++) k.addTask({ pid: 1000 + i, comm: `task${i}` });
        k.specs.set('livepatch_cmdline', { objects: { vmlinux: ['cmdline_proc_show'] } });
        const file = k.writeModule('livepatch_cmdline');
        const ours = await timeRuns(ctx.runs, async () => {
          await applyLivepatch({ module: file, roots: k.roots, pollMs: 5 });
          await revertLivepatch('livepatch_cmdline', { roots: k.roots, pollMs: 5 });
        });
        const { readFileSync } = await import('node:fs');
        const base = await timeRuns(ctx.runs, async () => {
          await k.roots.loader.insmod(file);
          const t = join(k.roots.sys, 'kernel/livepatch/livepatch_cmdline/transition');
          while (readFileSync(t, 'utf8').trim() !== '0') await new Promise((r) => setTimeout(r, 5));
          await revertLivepatch('livepatch_cmdline', { roots: k.roots, pollMs: 5 });
        });
        ctx.report({
          name: 'applyLivepatch+revert on a fake kernel with 200 tasks (library overhead, no VM)',
          ours: median(ours),
          baseline: { name: 'insmod + 5 ms polling + the same revert', value: median(base) },
        });
      } finally {
        k.dispose();
      }
    },
  },
];

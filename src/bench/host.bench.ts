/*
 * host: time from `suture apply` to "transition complete" for the blog's cmdline patch, in a VM on the
 * target kernel, against the bare way an operator would do it in the same VM: `insmod` then a shell
 * loop polling /sys/kernel/livepatch/<p>/transition every 50 ms. The difference is what Suture adds:
 * Node start-up, reading .modinfo, the identity checks, the kernel-log cursor and the task scans.
 * Both are timed inside the guest (/proc/uptime around the command), alternating, with the patch
 * reverted (and unloaded) between runs; a last row gives Node's bare start-up in the same VM, the
 * part of the overhead that is the runtime rather than Suture; `suture status` in the same VM against it.
 * `status-startup-host`: the host commands on this machine against `node -e 0` (goal < 0.3 s).
 * `startup-vm`: the same commands' start-up in the VM — status, apply up to its first read of the
 * module, and the boot unit's `host boot-apply` with an empty store — against `node -e 0` there, as a
 * ratio and as milliseconds over Node's own start-up.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { runKbuild } from '../klp/kbuild.js';
import { bootVm } from '../vm/index.js';
import { type Benchmark, median } from './harness.js';

const testdata = fileURLToPath(new URL('../../src/host/testdata/', import.meta.url));

async function guestMs(
  vm: Awaited<ReturnType<typeof bootVm>>,
  cmd: string,
  anyStatus = false,
): Promise<number> {
  // busybox date has no %N: /proc/uptime has 10 ms resolution, enough for second-scale runs
  const r = await vm.exec(
    `t0=$(cut -d' ' -f1 /proc/uptime); ${cmd} >/dev/null 2>&1; rc=$?; t1=$(cut -d' ' -f1 /proc/uptime); echo "$rc $t0 $t1"`,
    { timeoutMs: 180_000 },
  );
  const [rc, t0, t1] = r.output.trim().split(/\s+/).slice(-3).map(Number);
  if ((rc !== 0 && !anyStatus) || !Number.isFinite(t0) || !Number.isFinite(t1))
    throw new Error(`${cmd} failed in the guest: ${r.output.trim()}`);
  return ((t1 as number) - (t0 as number)) * 1000;
}

/** wall time of one run of `node ARGS` on this machine, its exit status ignored (status exits 1–4) */
function nodeMs(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
  if (r.error) throw r.error;
  return performance.now() - t0;
}

export const benchmarks: Benchmark[] = [
  {
    // the host commands on this machine: what a command adds to Node's own start-up
    name: 'status-startup-host',
    async run(ctx) {
      const cli = fileURLToPath(new URL('../../bin/suture.js', import.meta.url));
      const rows: Array<[string, string[]]> = [
        ['suture status --format json', [cli, 'status', '--format', 'json']],
        ['suture apply --help', [cli, 'apply', '--help']],
        ['suture host boot-apply --help', [cli, 'host', 'boot-apply', '--help']],
        ['suture apply (missing module: start-up, then a refusal)', [cli, 'apply', '/nonexistent.ko']],
        [
          'suture host boot-apply --timeout 0 (start-up, then a refusal)',
          [cli, 'host', 'boot-apply', '--timeout', '0'],
        ],
      ];
      const runs = Math.max(9, ctx.runs);
      for (const [name, args] of rows) {
        const ours: number[] = [];
        const base: number[] = [];
        nodeMs(args); // warm the page cache
        for (let i = 0; i < runs; i++) {
          ours.push(nodeMs(args));
          base.push(nodeMs(['-e', '0']));
        }
        ctx.report({
          name: `${name}, on this machine`,
          ours: median(ours),
          baseline: { name: 'node -e 0', value: median(base) },
          goal: { value: 300, text: '< 0.3 s' },
          note: `${runs} runs each, alternating; adds ${(median(ours) - median(base)).toFixed(0)} ms to Node's start-up`,
        });
      }
    },
  },
  {
    name: 'startup-vm',
    async run(ctx) {
      const kernel = await ensureKernel(defaultRelease());
      const vm = await bootVm({ kernel, withSuture: true });
      try {
        const rows: Array<[string, string]> = [
          ['suture status (no patch applied)', 'suture status'],
          ['suture apply up to reading the module (a missing one)', 'suture apply /m/missing.ko'],
          ["suture host boot-apply, the boot unit's command (empty store)", 'suture host boot-apply'],
        ];
        const node: number[] = [];
        const ours: number[][] = rows.map(() => []);
        await guestMs(vm, 'node -e 0');
        for (const [, cmd] of rows) await guestMs(vm, cmd, true); // page cache
        for (let i = 0; i < Math.max(5, ctx.runs); i++) {
          node.push(await guestMs(vm, 'node -e 0'));
          for (const [j, [, cmd]] of rows.entries()) ours[j]?.push(await guestMs(vm, cmd, true));
        }
        const base = median(node);
        for (const [j, [name]] of rows.entries()) {
          const m = median(ours[j] ?? []);
          ctx.report({
            name: `${name}, in the VM`,
            ours: m,
            baseline: { name: 'node -e 0 in the same VM', value: base },
            note: `start-up over node ${(m - base).toFixed(0)} ms; ${node.length} runs each, alternating, QEMU TCG`,
          });
        }
      } finally {
        await vm.close();
      }
    },
  },
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
        const cli = median([await guestMs(vm, 'suture --version'), await guestMs(vm, 'suture --version')]);
        ctx.report({
          name: 'of which: CLI start-up in the VM (suture --version: the entry and the fast path, no command file)',
          ours: cli,
        });
        const lib = median([
          await guestMs(vm, `node -e "import('/opt/suture/dist/host/index.js')"`),
          await guestMs(vm, `node -e "import('/opt/suture/dist/host/index.js')"`),
        ]);
        ctx.report({ name: 'of which: loading the host library alone', ours: lib });
        const status = median([
          await guestMs(vm, 'suture status || true'),
          await guestMs(vm, 'suture status || true'),
          await guestMs(vm, 'suture status || true'),
        ]);
        ctx.report({
          name: 'suture status in the VM (no patch applied)',
          ours: status,
          baseline: { name: 'node -e 0', value: node },
          goal: { value: 300, text: '< 0.3 s on a host; TCG is slower' },
        });
      } finally {
        await vm.close();
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
];

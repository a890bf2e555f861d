/*
 * Jump labels and static calls of patched code, in the VM (one boot for every step):
 *   - a fix to kyber's calculate_percentile (kyber_iosched, loaded at boot with null_blk; nullb0's
 *     scheduler switched to kyber) builds with KLP-MODULE-TRACEPOINT-INERT and is refused under
 *     --strict; in the VM direct reads of nullb0 make kyber's timer compute percentiles: the running
 *     kernel emits kyber_latency events, the patched calculate_percentile runs (function tracer on the
 *     livepatch's functions) and emits none (the tracepoint is inert in the patched copy), no oops, and
 *     once the livepatch is disabled the events come back;
 *   - meminfo_proc_show (vmlinux) with a new trace_sched_kthread_stop_ret() and a new static branch on
 *     sched_schedstats: the event is traced once enabled in tracefs, the branch follows
 *     /proc/sys/kernel/sched_schedstats.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { BuildRefused, buildLivepatch } from '../pipeline/pipeline.js';
import { runInVm } from '../vm/index.js';
import { writeKeysPatch } from './testing/module-keys.fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-module-keys-vm-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

const SCRIPT = [
  '#!/bin/sh',
  'set -e',
  'wait_transition() {',
  '  i=0',
  '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done',
  '}',
  'T=/sys/kernel/tracing',
  '[ -e $T/trace ] || mount -t tracefs nodev $T',
  "latency() { grep -c 'kyber_latency:' $T/trace || true; }",
  // direct reads complete through kyber, whose timer then computes the latency percentiles
  'io() { dd if=/dev/nullb0 of=/dev/null bs=4k count=3000 iflag=direct 2>/dev/null; sleep 2; }',
  'K=/sys/kernel/livepatch/livepatch_kyber',
  'echo kyber > /sys/block/nullb0/queue/scheduler',
  'echo "scheduler: $(cat /sys/block/nullb0/queue/scheduler)"',
  'echo 1 > $T/events/kyber/kyber_latency/enable',
  'io',
  'echo "latency before: $(latency)"',
  'insmod /lp-kyber.ko',
  'wait_transition $K',
  'echo "kyber: transition $(cat $K/transition) enabled $(cat $K/enabled)"',
  "echo ':mod:livepatch_kyber' > $T/set_ftrace_filter",
  'echo function > $T/current_tracer',
  'echo > $T/trace',
  'io',
  'echo "latency patched: $(latency)"',
  'echo "traced: $(grep -c \' calculate_percentile <-\' $T/trace || true)"',
  'echo nop > $T/current_tracer',
  'echo 0 > $K/enabled',
  'wait_transition $K',
  'echo > $T/trace',
  'io',
  'echo "latency after: $(latency)"',
  'echo 0 > $T/events/kyber/kyber_latency/enable',
  'M=/sys/kernel/livepatch/livepatch_meminfo',
  'insmod /lp-meminfo.ko',
  'wait_transition $M',
  'echo "meminfo: transition $(cat $M/transition) enabled $(cat $M/enabled)"',
  'echo "branch off: $(grep -c SutureSchedstats /proc/meminfo || true)"',
  'echo 1 > /proc/sys/kernel/sched_schedstats',
  'echo "branch on: $(grep -c SutureSchedstats /proc/meminfo || true)"',
  'echo 0 > /proc/sys/kernel/sched_schedstats',
  'echo "branch off again: $(grep -c SutureSchedstats /proc/meminfo || true)"',
  'echo > $T/trace',
  'cat /proc/meminfo > /dev/null',
  'echo "event disabled: $(grep -c \'ret=4242\' $T/trace || true)"',
  'echo 1 > $T/events/sched/sched_kthread_stop_ret/enable',
  'cat /proc/meminfo > /dev/null',
  'echo "event enabled: $(grep -c \'ret=4242\' $T/trace || true)"',
  '',
].join('\n');

test("a module's tracepoint is carried inert, vmlinux's tracepoint and static key work, in one VM", async () => {
  const kyberPatch = writeKeysPatch(target, dir, 'kyber');
  const kyber = await buildLivepatch({
    diffPath: kyberPatch,
    release: target.release,
    target,
    name: 'kyber',
    outDir: join(dir, 'out'),
  });
  assert.deepEqual(
    kyber.warnings.map((w) => w.code),
    ['KLP-MODULE-TRACEPOINT-INERT'],
  );
  await assert.rejects(
    buildLivepatch({
      diffPath: kyberPatch,
      release: target.release,
      target,
      name: 'kyber',
      outDir: join(dir, 'strict'),
      strict: true,
    }),
    (e) => e instanceof BuildRefused && e.refusals.map((d) => d.code).join() === 'KLP-MODULE-KEY',
  );
  const meminfo = await buildLivepatch({
    diffPath: writeKeysPatch(target, dir, 'meminfo'),
    release: target.release,
    target,
    name: 'meminfo',
    outDir: join(dir, 'out'),
  });
  copyFileSync(kyber.ko!, join(dir, 'lp-kyber.ko'));
  copyFileSync(meminfo.ko!, join(dir, 'lp-meminfo.ko'));
  const r = await runInVm({
    kernel: target,
    modules: ['null_blk', 'kyber_iosched'],
    files: [{ from: join(dir, 'lp-kyber.ko') }, { from: join(dir, 'lp-meminfo.ko') }],
    timeoutMs: 600_000,
    script: SCRIPT,
  });
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
  const o = r.output;
  assert.match(o, /^scheduler: .*\[kyber\]/m);
  assert.match(o, /^latency before: [1-9]\d*$/m, 'the running kernel emits kyber_latency');
  assert.match(o, /^kyber: transition 0 enabled 1$/m);
  assert.match(o, /^traced: [1-9]\d*$/m, 'the patched calculate_percentile ran');
  assert.match(o, /^latency patched: 0$/m, 'the tracepoint is inert in the patched copy');
  assert.match(o, /^latency after: [1-9]\d*$/m, 'disabled, the original emits the events again');
  assert.match(o, /^meminfo: transition 0 enabled 1$/m);
  assert.match(o, /^branch off: 0$/m);
  assert.match(o, /^branch on: 1$/m, 'the new static branch follows sched_schedstats');
  assert.match(o, /^branch off again: 0$/m);
  assert.match(o, /^event disabled: 0$/m);
  assert.match(o, /^event enabled: 1$/m, 'the new trace call of a vmlinux tracepoint fires once enabled');
});

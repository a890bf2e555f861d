/*
 * `suture build` proven in the exact target kernel under QEMU: the module each diff produces loads,
 * the transition completes, the running kernel behaves as patched, and disabling restores it.
 *   - the blog's meminfo patch, through the `suture build` command line;
 *   - a patch touching two files, one of which adds a new static function called from an existing one;
 *   - a patch to a function in a module (binfmt_misc), with the module loaded before the livepatch and
 *     loaded after it (the livepatch core patches it when it arrives);
 *   (the first and the third are the scenarios of testing/build-scenarios.ts, run on the other kernel
 *   lines by lines.vm.test.ts);
 *   - a real stable fix to a function the kernel reaches only through a pointer in named data
 *     (enqueue_task_dl, from `dl_sched_class` in section `__dl_sched_class`): the function tracer,
 *     filtered on the livepatch module, sees the replacement run for a SCHED_DEADLINE task, and
 *     sees nothing once the patch is disabled.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import { buildLivepatch } from './pipeline.js';
import { assertOk, makePatch, meminfoScenario, moduleScenario, WAIT } from './testing/build-scenarios.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');
const SCHED_DEADLINE_FIX = resolve(
  process.cwd(),
  '..',
  'shared',
  'corpus',
  'stable-6.1.187-to-192',
  'kernel_sched_deadline.patch',
);
const testdata = resolve(process.cwd(), 'src', 'pipeline', 'testdata');
const dir = mkdtempSync(join(tmpdir(), 'suture-build-vm-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('meminfo: `suture build` makes a module that shows VMALLOCCHUNK, and disabling restores it', () =>
  meminfoScenario(target, MEMINFO, join(dir, 'meminfo')));

test('two files, one adding a new static function called from an existing one', async () => {
  const cmdline = makePatch(target, 'fs/proc/cmdline.c', (t) =>
    t
      .replace(
        'static int cmdline_proc_show(',
        'static noinline void suture_mark(struct seq_file *m)\n{\n\tseq_puts(m, " suture_new_function");\n}\n\nstatic int cmdline_proc_show(',
      )
      .replace(
        '\tseq_puts(m, saved_command_line);\n',
        '\tseq_puts(m, saved_command_line);\n\tsuture_mark(m);\n',
      ),
  );
  const patch = join(dir, 'two-files.patch');
  writeFileSync(patch, readFileSync(MEMINFO, 'utf8') + cmdline);
  const b = await buildLivepatch({ diffPath: patch, release: target.release, outDir: join(dir, 'two') });
  assert.deepEqual(
    b.summary.map((l) => l.replace(/ \(.*$/, '')),
    [
      'meminfo.o: changed function: meminfo_proc_show',
      'cmdline.o: changed function: cmdline_proc_show',
      'cmdline.o: new function: suture_mark',
    ],
  );
  const r = await runInVm({
    kernel: target,
    files: [{ from: b.ko!, to: '/lp.ko' }],
    timeoutMs: 300_000,
    script: [
      '#!/bin/sh',
      'set -e',
      ...WAIT,
      'p=/sys/kernel/livepatch/livepatch_two_files',
      'echo "before: $(cat /proc/cmdline) | $(grep -i chunk /proc/meminfo)"',
      'insmod /lp.ko',
      'wait_transition $p',
      'echo "patched: $(cat /proc/cmdline) | $(grep -i chunk /proc/meminfo)"',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'echo "after: $(cat /proc/cmdline) | $(grep -i chunk /proc/meminfo)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /before: (?!.*suture_new_function).* \| VmallocChunk:/);
  assert.match(r.output, /patched: .* suture_new_function \| VMALLOCCHUNK:/);
  assert.match(r.output, /after: (?!.*suture_new_function).* \| VmallocChunk:/);
});

for (const order of ['before', 'after'] as const) {
  test(`a function in a module (binfmt_misc) loaded ${order} the livepatch`, () =>
    moduleScenario(target, order, dir));
}

test('a fix reached only through a function pointer (dl_sched_class) runs for a SCHED_DEADLINE task', async () => {
  const b = await buildLivepatch({
    diffPath: SCHED_DEADLINE_FIX,
    release: target.release,
    name: 'deadline',
    outDir: join(dir, 'deadline'),
  });
  assert.match(b.summary[0]!, /^build_policy\.o: changed function: enqueue_task_dl/);
  const task = join(dir, 'sched-deadline-task');
  const cc = spawnSync('gcc', ['-static', '-O2', '-o', task, join(testdata, 'sched-deadline-task.c')], {
    encoding: 'utf8',
  });
  assert.equal(cc.status, 0, cc.stderr);
  const r = await runInVm({
    kernel: target,
    files: [
      { from: b.ko!, to: '/lp.ko' },
      { from: task, to: '/sched-deadline-task' },
    ],
    timeoutMs: 300_000,
    script: [
      '#!/bin/sh',
      'set -e',
      ...WAIT,
      'T=/sys/kernel/tracing',
      '[ -e $T/trace ] || mount -t tracefs nodev $T',
      'p=/sys/kernel/livepatch/livepatch_deadline',
      'insmod /lp.ko',
      'wait_transition $p',
      // only the functions of the livepatch module: the replacement, not the original
      "echo ':mod:livepatch_deadline' > $T/set_ftrace_filter",
      'echo "filter: $(cat $T/set_ftrace_filter)"',
      'echo function > $T/current_tracer',
      '/sched-deadline-task',
      'echo 0 > $T/tracing_on',
      'echo "patched: $(grep -c \' enqueue_task_dl <-\' $T/trace)"',
      "grep -m1 'sched-deadline.* enqueue_task_dl <-' $T/trace",
      'echo > $T/trace',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'echo 1 > $T/tracing_on',
      '/sched-deadline-task',
      'echo 0 > $T/tracing_on',
      'echo "disabled: $(grep -c \' enqueue_task_dl <-\' $T/trace || true)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /^filter: enqueue_task_dl \[livepatch_deadline\]$/m);
  assert.match(r.output, /deadline task slept 20 times[\s\S]*deadline task slept 20 times/);
  const patched = Number(/^patched: (\d+)$/m.exec(r.output)?.[1]);
  assert.ok(patched > 0, `the replacement ran (${patched} calls traced)\n${r.output}`);
  // the comm is cut to 15 characters: `sched-deadline--101`
  assert.match(r.output, /sched-deadline-+\d+ .* enqueue_task_dl <-/, 'for the deadline task itself');
  assert.match(r.output, /^disabled: 0$/m, 'once disabled, the original runs again');
});

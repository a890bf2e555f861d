/*
 * `suture build` proven in the exact target kernel under QEMU: the module each diff produces loads,
 * the transition completes, the running kernel behaves as patched, and disabling restores it.
 *   - the blog's meminfo patch, through the `suture build` command line;
 *   - a patch touching two files, one of which adds a new static function called from an existing one;
 *   - a patch to a function in a module (binfmt_misc), with the module loaded before the livepatch and
 *     loaded after it (the livepatch core patches it when it arrives);
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
import { createTwoFilesPatch } from 'diff';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { manifestSchema } from '../manifest/manifest.js';
import { runInVm } from '../vm/index.js';
import type { VmResult } from '../vm/options.js';
import { buildLivepatch } from './pipeline.js';

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

function makePatch(file: string, edit: (text: string) => string): string {
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = edit(text);
  assert.notEqual(changed, text, `the edit of ${file} applies`);
  return createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed);
}

/** Shell: wait for the patch's transition to finish (enable or disable). */
const WAIT = [
  'wait_transition() {',
  '  i=0',
  '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
  '}',
];

function assertOk(r: VmResult): void {
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
}

test('meminfo: `suture build` makes a module that shows VMALLOCCHUNK, and disabling restores it', async () => {
  const out = join(dir, 'meminfo');
  const cli = spawnSync(
    process.execPath,
    ['bin/suture.js', 'build', MEMINFO, '--kernel', target.release, '--name', 'meminfo', '-o', out],
    { encoding: 'utf8' },
  );
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /^meminfo\.o: changed function: meminfo_proc_show/m);
  assert.match(cli.stderr, /\[9\/9\] manifest/);
  const manifest = manifestSchema.parse(
    JSON.parse(readFileSync(join(out, 'livepatch-meminfo.manifest.json'), 'utf8')),
  );
  assert.equal(manifest.kernel.buildId, target.buildId);
  assert.deepEqual(manifest.objects, [
    {
      name: 'vmlinux',
      functions: [{ name: 'meminfo_proc_show', sympos: 0, file: 'fs/proc/meminfo.c', change: 'changed' }],
    },
  ]);
  const r = await runInVm({
    kernel: target,
    files: [{ from: join(out, 'livepatch-meminfo.ko'), to: '/livepatch-meminfo.ko' }],
    timeoutMs: 300_000,
    script: [
      '#!/bin/sh',
      'set -e',
      ...WAIT,
      'p=/sys/kernel/livepatch/livepatch_meminfo',
      'echo "before: $(grep -i chunk /proc/meminfo)"',
      'insmod /livepatch-meminfo.ko',
      'wait_transition $p',
      'echo "transition: $(cat $p/transition) enabled: $(cat $p/enabled)"',
      'echo "patched: $(grep -i chunk /proc/meminfo)"',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'echo "after: $(grep -i chunk /proc/meminfo)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /before: VmallocChunk:/);
  assert.match(r.output, /transition: 0 enabled: 1/);
  assert.match(r.output, /patched: VMALLOCCHUNK:/);
  assert.match(r.output, /after: VmallocChunk:/);
});

test('two files, one adding a new static function called from an existing one', async () => {
  const cmdline = makePatch('fs/proc/cmdline.c', (t) =>
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
  test(`a function in a module (binfmt_misc) loaded ${order} the livepatch`, async () => {
    const patch = join(dir, `module-${order}.patch`);
    writeFileSync(
      patch,
      makePatch('fs/binfmt_misc.c', (t) =>
        t.replace(
          'char *s = enabled ? "enabled\\n" : "disabled\\n";',
          'char *s = enabled ? "ENABLED-by-suture\\n" : "disabled\\n";',
        ),
      ),
    );
    const b = await buildLivepatch({
      diffPath: patch,
      release: target.release,
      name: 'binfmt',
      outDir: join(dir, order),
    });
    assert.equal(b.units[0]!.unit.target, 'binfmt_misc');
    assert.match(b.summary[0]!, /^binfmt_misc\.o: changed function: bm_status_read/);
    const load = order === 'before' ? [] : ['modprobe binfmt_misc'];
    const r = await runInVm({
      kernel: target,
      ...(order === 'before' ? { modules: ['binfmt_misc'] } : { placeModules: ['binfmt_misc'] }),
      files: [{ from: b.ko!, to: '/lp.ko' }],
      timeoutMs: 300_000,
      script: [
        '#!/bin/sh',
        'set -e',
        ...WAIT,
        'p=/sys/kernel/livepatch/livepatch_binfmt',
        'mkdir -p /tmp/bm',
        'insmod /lp.ko',
        'wait_transition $p',
        ...load,
        'mount -t binfmt_misc none /tmp/bm',
        'echo "patched: $(cat /tmp/bm/status)"',
        'echo 0 > $p/enabled',
        'wait_transition $p',
        'echo "after: $(cat /tmp/bm/status)"',
        '',
      ].join('\n'),
    });
    assertOk(r);
    assert.match(r.output, /patched: ENABLED-by-suture/);
    assert.match(r.output, /after: enabled/);
  });
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

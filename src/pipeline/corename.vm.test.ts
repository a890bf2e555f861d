/*
 * The background article's "defeat", on the running 6.1 kernel: a fix to format_corename (fs/coredump.c),
 * which gcc made `format_corename.isra.0` on the article's 5.4 kernel. Here gcc-12 inlines it into
 * do_coredump, which the livepatch replaces. The fix is the article's own, one step further: its
 * `core_pattern` of `|` alone is refused since 5.4, a `|` followed by spaces still goes on to a helper
 * with an empty name (which the usermode-helper code silently skips). In the VM a process dumps core with
 * `core_pattern` set to `| `: the running kernel says nothing, the patched one refuses the pattern
 * ("format_corename failed" in the kernel log), and once disabled the original runs again (silent).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTwoFilesPatch } from 'diff';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import { buildLivepatch } from './pipeline.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-corename-vm-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

const EMPTY_PIPE = `		++pat_ptr;
		if (!(*pat_ptr))
			return -ENOMEM;
`;
const SKIP_SPACES = `		++pat_ptr;
		/* a pipe to nothing but spaces has no helper to run either */
		while (isspace(*pat_ptr))
			++pat_ptr;
		if (!(*pat_ptr))
			return -ENOMEM;
`;

test('format_corename: the fix is carried (inlined into do_coredump) and refuses a `| ` core_pattern', async () => {
  const file = 'fs/coredump.c';
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  assert.equal(text.split(EMPTY_PIPE).length, 2, 'the article’s fix is in this kernel, once');
  const diffPath = join(dir, 'corename.patch');
  writeFileSync(
    diffPath,
    createTwoFilesPatch(`a/${file}`, `b/${file}`, text, text.replace(EMPTY_PIPE, SKIP_SPACES)),
  );
  const b = await buildLivepatch({
    diffPath,
    release: target.release,
    name: 'corename',
    outDir: join(dir, 'out'),
  });
  assert.ok(
    b.summary.some((l) => /^coredump\.o: changed function: do_coredump /.test(l)),
    b.summary.join('\n'),
  );
  const r = await runInVm({
    kernel: target,
    files: [{ from: b.ko!, to: '/lp.ko' }],
    timeoutMs: 300_000,
    script: [
      '#!/bin/sh',
      'set -e',
      'wait_transition() {',
      '  i=0',
      '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
      '}',
      // a shell that sends itself SIGSEGV dumps core through core_pattern
      "crash() { sh -c 'kill -SEGV $$' || true; }",
      "count() { echo \"$1: pipe $(dmesg | grep -c 'Core dump to | pipe failed' || true) format $(dmesg | grep -c 'format_corename failed' || true)\"; }",
      'p=/sys/kernel/livepatch/livepatch_corename',
      "printf '| ' > /proc/sys/kernel/core_pattern",
      'echo "pattern: [$(cat /proc/sys/kernel/core_pattern)]"',
      'crash',
      'count before',
      'insmod /lp.ko',
      'wait_transition $p',
      'echo "transition: $(cat $p/transition) enabled: $(cat $p/enabled)"',
      // the function tracer on the livepatch module's functions only: the replacement, not the original
      'T=/sys/kernel/tracing',
      '[ -e $T/trace ] || mount -t tracefs nodev $T',
      "echo ':mod:livepatch_corename' > $T/set_ftrace_filter",
      'echo function > $T/current_tracer',
      'crash',
      'count patched',
      'echo "traced: $(grep -c \' do_coredump <-\' $T/trace || true)"',
      'echo > $T/trace',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'crash',
      'count after',
      'echo "traced after: $(grep -c \' do_coredump <-\' $T/trace || true)"',
      '',
    ].join('\n'),
  });
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
  assert.match(r.output, /^pattern: \[\| \]$/m);
  assert.match(r.output, /^before: pipe 0 format 0$/m, 'the running kernel goes on to an empty helper');
  assert.match(r.output, /transition: 0 enabled: 1/);
  assert.match(r.output, /^patched: pipe 0 format 1$/m, 'the replacement refuses the pattern');
  assert.match(r.output, /^traced: [1-9]\d*$/m, 'the replacement do_coredump ran');
  assert.match(r.output, /^after: pipe 0 format 1$/m, 'once disabled, the original runs again');
  assert.match(r.output, /^traced after: 0$/m);
});

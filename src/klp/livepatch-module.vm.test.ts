/*
 * The truth for the module stage, in the exact target kernel under QEMU: the meminfo livepatch shows
 * VMALLOCCHUNK and disabling it restores VmallocChunk; a module fix works with the module loaded before
 * or after the patch; a module fix using another module's exports needs no hard dependency; a patch
 * touching two files, one gaining a new static helper, is one livepatch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import {
  buildFixtureLivepatch,
  buildMeminfoLivepatch,
  DCTCP_PATCH,
  type FixtureBuild,
  IP_GRE_PATCH,
} from './testing/livepatch-module.fixture.js';

/** Two files in one patch; cmdline.c gains a new static helper called from the replaced function. */
const TWO_FILES_PATCH = [
  'diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c',
  '--- a/fs/proc/cmdline.c',
  '+++ b/fs/proc/cmdline.c',
  '@@ -4,9 +4,15 @@',
  ' #include <linux/proc_fs.h>',
  ' #include <linux/seq_file.h>',
  ' ',
  '+static noinline void cmdline_note(struct seq_file *m)',
  '+{',
  '+\tseq_puts(m, " [livepatched]");',
  '+}',
  '+',
  ' static int cmdline_proc_show(struct seq_file *m, void *v)',
  ' {',
  ' \tseq_puts(m, saved_command_line);',
  '+\tcmdline_note(m);',
  " \tseq_putc(m, '\\n');",
  ' \treturn 0;',
  ' }',
  'diff --git a/fs/proc/meminfo.c b/fs/proc/meminfo.c',
  '--- a/fs/proc/meminfo.c',
  '+++ b/fs/proc/meminfo.c',
  '@@ -128,7 +128,7 @@',
  ' \tseq_printf(m, "VmallocTotal:   %8lu kB\\n",',
  ' \t\t   (unsigned long)VMALLOC_TOTAL >> 10);',
  ' \tshow_val_kb(m, "VmallocUsed:    ", vmalloc_nr_pages());',
  '-\tshow_val_kb(m, "VmallocChunk:   ", 0ul);',
  '+\tshow_val_kb(m, "VMALLOCCHUNK:   ", 0ul);',
  ' \tshow_val_kb(m, "Percpu:         ", pcpu_nr_pages());',
  ' ',
  ' #ifdef CONFIG_MEMORY_FAILURE',
  '',
].join('\n');

let built: FixtureBuild | undefined;
after(() => {
  if (built) rmSync(built.dir, { recursive: true, force: true });
});

test('the meminfo livepatch loads, patches /proc/meminfo, and unpatches on disable', async () => {
  const kernel = await ensureKernel(defaultRelease());
  built = await buildMeminfoLivepatch(kernel);
  const r = await runInVm({
    kernel,
    files: [{ from: built.module.ko, to: '/livepatch-meminfo.ko' }],
    timeoutMs: 240_000,
    script: [
      '#!/bin/sh',
      'set -e',
      'echo "before: $(grep -i chunk /proc/meminfo)"',
      'insmod /livepatch-meminfo.ko',
      'p=/sys/kernel/livepatch/livepatch_meminfo',
      'i=0; while [ "$(cat $p/transition)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done',
      'echo "transition: $(cat $p/transition) enabled: $(cat $p/enabled)"',
      'echo "patched: $(grep -i chunk /proc/meminfo)"',
      'echo 0 > $p/enabled',
      'i=0; while [ -d $p ] && [ "$(cat $p/transition 2>/dev/null)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done',
      'echo "after: $(grep -i chunk /proc/meminfo)"',
      '',
    ].join('\n'),
  });
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
  assert.match(r.output, /before: VmallocChunk:/);
  assert.match(r.output, /transition: 0 enabled: 1/);
  assert.match(r.output, /patched: VMALLOCCHUNK:/);
  assert.match(r.output, /after: VmallocChunk:/);
  assert.match(r.kernelLog, /livepatch: 'livepatch_meminfo': patching complete/);
});

for (const order of ['before', 'after'] as const) {
  test(`a livepatch for a module function works when the module loads ${order} the patch`, async () => {
    const kernel = await ensureKernel(defaultRelease());
    const dctcp = await buildFixtureLivepatch(kernel, DCTCP_PATCH, 'dctcp');
    try {
      assert.deepEqual(
        dctcp.module.manifestObjects.map((o) => o.name),
        ['tcp_dctcp'],
      );
      assert.ok(dctcp.module.klp.sections.some((s) => s.name.startsWith('.klp.rela.tcp_dctcp.')));
      const p = '/sys/kernel/livepatch/livepatch_dctcp';
      const r = await runInVm({
        kernel,
        placeModules: ['tcp_dctcp'],
        files: [{ from: dctcp.module.ko, to: '/livepatch-dctcp.ko' }],
        timeoutMs: 240_000,
        script: [
          '#!/bin/sh',
          'set -e',
          order === 'before' ? 'modprobe tcp_dctcp' : 'true',
          'insmod /livepatch-dctcp.ko',
          `i=0; while [ "$(cat ${p}/transition)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done`,
          'modprobe tcp_dctcp',
          // a socket using dctcp runs the patched dctcp_init
          'sysctl -w net.ipv4.tcp_congestion_control=dctcp >/dev/null 2>&1 || echo dctcp > /proc/sys/net/ipv4/tcp_congestion_control',
          `echo "patched: $(cat ${p}/tcp_dctcp/patched) transition: $(cat ${p}/transition)"`,
          '',
        ].join('\n'),
      });
      assert.equal(
        r.outcome,
        'ok',
        `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
      );
      assert.match(r.output, /patched: 1 transition: 0/);
      if (order === 'after')
        assert.match(r.kernelLog, /applying patch 'livepatch_dctcp' to loading module 'tcp_dctcp'/);
    } finally {
      rmSync(dctcp.dir, { recursive: true, force: true });
    }
  });
}

test('a module patch using another module’s exports loads without that module, and applies when the target loads', async () => {
  const kernel = await ensureKernel(defaultRelease());
  // ip_gre's fix calls ip_tunnel_changelink, exported by ip_tunnel (which ip_gre depends on)
  const gre = await buildFixtureLivepatch(kernel, IP_GRE_PATCH, 'gre');
  try {
    const relocs = gre.module.klp.sections.map((s) => s.name);
    assert.ok(
      relocs.every((n) => n.startsWith('.klp.rela.ip_gre.') || n.startsWith('.klp.rela.vmlinux.')),
      relocs.join(' '),
    );
    assert.ok(gre.module.klp.symbols.some((s) => s.startsWith('.klp.sym.ip_tunnel.ip_tunnel_changelink,')));
    const p = '/sys/kernel/livepatch/livepatch_gre';
    const r = await runInVm({
      kernel,
      placeModules: ['ip_gre'],
      files: [{ from: gre.module.ko, to: '/livepatch-gre.ko' }],
      timeoutMs: 240_000,
      script: [
        '#!/bin/sh',
        'set -e',
        'if grep -q "^ip_tunnel " /proc/modules; then echo "ip_tunnel already loaded"; exit 9; fi',
        'insmod /livepatch-gre.ko',
        `i=0; while [ "$(cat ${p}/transition)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done`,
        'modprobe ip_gre',
        `echo "patched: $(cat ${p}/ip_gre/patched) transition: $(cat ${p}/transition)"`,
        '',
      ].join('\n'),
    });
    assert.equal(
      r.outcome,
      'ok',
      `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
    );
    assert.match(r.output, /patched: 1 transition: 0/);
    assert.match(r.kernelLog, /applying patch 'livepatch_gre' to loading module 'ip_gre'/);
  } finally {
    rmSync(gre.dir, { recursive: true, force: true });
  }
});

test('a patch touching two files, one adding a new static helper, loads as one livepatch', async () => {
  const kernel = await ensureKernel(defaultRelease());
  const dir = mkdtempSync(join(tmpdir(), 'suture-two-files-'));
  try {
    const patch = join(dir, 'two-files.patch');
    writeFileSync(patch, TWO_FILES_PATCH);
    const two = await buildFixtureLivepatch(kernel, patch, 'two');
    try {
      const cmdline = two.diffs[0]!;
      assert.deepEqual(
        cmdline.functions
          .filter((f) => f.change !== 'same')
          .map((f) => `${f.name}:${f.change}`)
          .sort(),
        ['cmdline_note:new', 'cmdline_proc_show:changed'],
      );
      assert.deepEqual(two.module.manifestObjects[0]?.functions.map((f) => f.name).sort(), [
        'cmdline_proc_show',
        'meminfo_proc_show',
      ]);
      const p = '/sys/kernel/livepatch/livepatch_two';
      const r = await runInVm({
        kernel,
        files: [{ from: two.module.ko, to: '/livepatch-two.ko' }],
        timeoutMs: 240_000,
        script: [
          '#!/bin/sh',
          'set -e',
          'insmod /livepatch-two.ko',
          `i=0; while [ "$(cat ${p}/transition)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done`,
          'echo "cmdline: $(cat /proc/cmdline)"',
          'echo "meminfo: $(grep -i chunk /proc/meminfo)"',
          `echo 0 > ${p}/enabled`,
          `i=0; while [ -d ${p} ] && [ "$(cat ${p}/transition 2>/dev/null)" = 1 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done`,
          'echo "after: $(cat /proc/cmdline)"',
          '',
        ].join('\n'),
      });
      assert.equal(
        r.outcome,
        'ok',
        `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
      );
      assert.match(r.output, /cmdline: .* \[livepatched\]/);
      assert.match(r.output, /meminfo: VMALLOCCHUNK:/);
      assert.doesNotMatch(r.output, /after: .*livepatched/);
    } finally {
      rmSync(two.dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

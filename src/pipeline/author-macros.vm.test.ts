/*
 * The patch author's macros (src/klp/include/), proven in the exact target kernel under QEMU: the patches of
 * examples/kpatch/ (kpatch's vocabulary) and examples/klp/ (upstream's) build unchanged, load, and
 * show their effect:
 *   - callbacks on vmlinux and on a module (binfmt_misc, loaded before the livepatch) print to the
 *     kernel log in the documented order, pre_patch → post_patch on enable and pre_unpatch →
 *     post_unpatch on disable, with the patched function's effect in between;
 *   - a patched syscall (newuname): `uname -v` in the guest shows the patched version string, and
 *     the original once the patch is disabled;
 *   - a new function and a new static variable (examples/kpatch/cmdline-new-function.patch), logging its
 *     first call with KPATCH_PRINTK: /proc/cmdline counts its reads while patched;
 *   - examples/kpatch/binfmt-misc-shadow-field.patch: a new field of a struct as a shadow variable,
 *     attached to existing entries by a post-patch callback (and on first use to later ones), counted
 *     by the patched code, freed by the post-unpatch callback: a second load starts from scratch;
 *   - examples/kpatch/version-new-global.patch and loadavg-pr-debug.patch in one session: a new global
 *     variable counted from its initializer while patched; a new pr_debug listed in
 *     /proc/dynamic_debug/control under the livepatch module, silent until enabled there, then in dmesg;
 *   - a pre_patch callback that fails: `suture apply` in the guest refuses the patch with the errno
 *     init_module returned and the kernel's line, and nothing stays patched.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import type { VmResult } from '../vm/options.js';
import { buildLivepatch } from './pipeline.js';
import { fileDiff } from './testing/file-diff.js';

const examples = resolve(process.cwd(), 'examples');
let target: KernelTarget;
let dir: string;
before(async () => {
  target = await ensureKernel(defaultRelease());
  dir = await mkdtemp(join(tmpdir(), 'suture-author-vm-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const build = async (example: string, name: string) =>
  (
    await buildLivepatch({
      diffPath: join(examples, example),
      release: target.release,
      name,
      outDir: join(dir, name),
    })
  ).ko!;

/** Shell: wait for a patch's transition, enable it, look, disable it, look again, unload. */
const SHELL = [
  '#!/bin/sh',
  'set -e',
  'wait_transition() {',
  '  i=0',
  '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
  '}',
  'cycle() { # name ko look',
  '  p=/sys/kernel/livepatch/$1',
  '  echo "$1 before: $(eval "$3")"',
  '  insmod $2',
  '  wait_transition $p',
  '  echo "$1 patched: $(eval "$3")"',
  '  echo 0 > $p/enabled',
  '  wait_transition $p',
  '  echo "$1 after: $(eval "$3")"',
  '  rmmod $1',
  '}',
];

/** The callback lines of the kernel log, in order, as `kind object`. */
const callbackOrder = (r: VmResult) =>
  [...r.kernelLog.matchAll(/suture-callback: (\w+) (\w+)/g)].map((m) => `${m[1]} ${m[2]}`);

function assertOk(r: VmResult): void {
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
}

const ORDER = ['pre_patch', 'post_patch', 'pre_unpatch', 'post_unpatch'];

test("kpatch's vocabulary: callbacks on vmlinux and on a module, and a patched syscall", async () => {
  const meminfo = await build('kpatch/meminfo-callbacks.patch', 'kp-meminfo');
  const binfmt = await build('kpatch/binfmt-misc-callbacks.patch', 'kp-binfmt');
  const uname = await build('kpatch/newuname-syscall.patch', 'kp-uname');
  const r = await runInVm({
    kernel: target,
    modules: ['binfmt_misc'],
    files: [
      { from: meminfo, to: '/meminfo.ko' },
      { from: binfmt, to: '/binfmt.ko' },
      { from: uname, to: '/uname.ko' },
    ],
    timeoutMs: 400_000,
    script: [
      ...SHELL,
      'mkdir -p /tmp/bm && mount -t binfmt_misc none /tmp/bm',
      `cycle livepatch_kp_meminfo /meminfo.ko 'grep -i chunk /proc/meminfo'`,
      `cycle livepatch_kp_binfmt /binfmt.ko 'cat /tmp/bm/status'`,
      `cycle livepatch_kp_uname /uname.ko 'uname -v'`,
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /livepatch_kp_meminfo before: VmallocChunk:/);
  assert.match(r.output, /livepatch_kp_meminfo patched: KpatchChunk:/);
  assert.match(r.output, /livepatch_kp_meminfo after: VmallocChunk:/);
  assert.match(r.output, /livepatch_kp_binfmt patched: ENABLED-by-kpatch/);
  assert.match(r.output, /livepatch_kp_binfmt after: enabled/);
  assert.match(r.output, /livepatch_kp_uname patched: suture-kpatch-syscall/);
  assert.doesNotMatch(r.output, /livepatch_kp_uname (before|after): suture-kpatch-syscall/);
  assert.deepEqual(callbackOrder(r), [
    ...ORDER.map((k) => `${k} vmlinux`),
    ...ORDER.map((k) => `${k} binfmt_misc`),
  ]);
});

test("upstream's vocabulary: callbacks on vmlinux and a patched syscall", async () => {
  const meminfo = await build('klp/meminfo-callbacks.patch', 'klp-meminfo');
  const uname = await build('klp/newuname-syscall.patch', 'klp-uname');
  const r = await runInVm({
    kernel: target,
    files: [
      { from: meminfo, to: '/meminfo.ko' },
      { from: uname, to: '/uname.ko' },
    ],
    timeoutMs: 400_000,
    script: [
      ...SHELL,
      `cycle livepatch_klp_meminfo /meminfo.ko 'grep -i chunk /proc/meminfo'`,
      `cycle livepatch_klp_uname /uname.ko 'uname -v'`,
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /livepatch_klp_meminfo patched: KlpChunk:/);
  assert.match(r.output, /livepatch_klp_meminfo after: VmallocChunk:/);
  assert.match(r.output, /livepatch_klp_uname patched: suture-klp-syscall/);
  assert.doesNotMatch(r.output, /livepatch_klp_uname after: suture-klp-syscall/);
  assert.deepEqual(
    callbackOrder(r),
    ORDER.map((k) => `${k} vmlinux`),
  );
});

test("a failing pre_patch callback: `suture apply` shows the errno and the kernel's reason", async () => {
  const file = 'fs/proc/meminfo.c';
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = text
    .replace(
      '#include "internal.h"\n',
      [
        '#include "internal.h"',
        '#include "kpatch-macros.h"',
        'static int refuse_patch(patch_object *obj)',
        '{',
        '\tpr_info("suture-callback: pre_patch refuses\\n");',
        '\treturn -EBUSY;',
        '}',
        'KPATCH_PRE_PATCH_CALLBACK(refuse_patch);',
        '',
      ].join('\n'),
    )
    .replace('"VmallocChunk:   "', '"RefusedChunk:   "');
  const patch = join(dir, 'refused.patch');
  writeFileSync(patch, fileDiff(file, text, changed));
  const b = await buildLivepatch({
    diffPath: patch,
    release: target.release,
    name: 'refused',
    outDir: join(dir, 'refused'),
  });
  const r = await runInVm({
    kernel: target,
    withSuture: true,
    files: [{ from: b.ko!, to: '/lp.ko' }],
    timeoutMs: 900_000,
    script: [
      '#!/bin/sh',
      'if suture apply /lp.ko; then echo "apply: ok"; else echo "apply: refused $?"; fi',
      'echo "meminfo: $(grep -i chunk /proc/meminfo)"',
      'echo "livepatches: $(ls /sys/kernel/livepatch | wc -l)"',
      'echo "loaded: $(grep -c livepatch_refused /proc/modules)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /apply: refused [1-9]/);
  assert.match(r.output, /error\[HOST-LOAD-FAILED\]/);
  assert.match(r.output, /Device or resource busy|EBUSY/);
  assert.match(r.output, /pre-patch callback failed for object 'vmlinux'/);
  assert.match(r.output, /meminfo: VmallocChunk:/);
  assert.match(r.output, /livepatches: 0/);
  assert.match(r.output, /loaded: 0/);
  // only the refusing callback ran (busybox's insmod tries finit_module, then init_module: once or twice)
  const ran = callbackOrder(r);
  assert.ok(ran.length >= 1 && ran.every((c) => c === 'pre_patch refuses'), ran.join(', '));
});

test('a new field of a struct as a shadow variable: attached, counted, freed on unpatch', async () => {
  const ko = await build('kpatch/binfmt-misc-shadow-field.patch', 'shadow');
  const r = await runInVm({
    kernel: target,
    modules: ['binfmt_misc'],
    files: [{ from: ko, to: '/shadow.ko' }],
    timeoutMs: 400_000,
    script: [
      ...SHELL,
      'p=/sys/kernel/livepatch/livepatch_shadow',
      // one read(2) of the entry's file: the patched code counts every status it writes
      'reads() { dd if="/tmp/bm/$1" bs=4096 count=1 2>/dev/null | grep reads || echo none; }',
      'mkdir -p /tmp/bm && mount -t binfmt_misc none /tmp/bm',
      "echo ':early:E::early::/bin/true:' > /tmp/bm/register",
      'echo "unpatched: $(reads early)"',
      'insmod /shadow.ko',
      'wait_transition $p',
      'echo "early 1: $(reads early)"',
      'echo "early 2: $(reads early)"',
      "echo ':late:E::late::/bin/true:' > /tmp/bm/register",
      'echo "late 1: $(reads late)"',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'echo "disabled: $(reads early)"',
      'rmmod livepatch_shadow',
      'insmod /shadow.ko',
      'wait_transition $p',
      'echo "again: $(reads early) / $(reads late)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /unpatched: none/);
  assert.match(r.output, /early 1: reads 1\n/);
  assert.match(r.output, /early 2: reads 2\n/);
  assert.match(r.output, /late 1: reads 1\n/);
  assert.match(r.output, /disabled: none/);
  assert.match(r.output, /again: reads 1 \/ reads 1\n/);
  const shadowLog = [...r.kernelLog.matchAll(/suture-shadow: (.*)/g)].map((m) => m[1]!.trim());
  assert.deepEqual(shadowLog.slice(0, 1), ['attached reads to 1 entries']);
  assert.deepEqual(shadowLog.slice(1, 3).sort(), ['freed reads of early', 'freed reads of late']);
  assert.deepEqual(shadowLog.slice(3), ['attached reads to 2 entries']);
});

test('a new function and a new variable, with KPATCH_PRINTK', async () => {
  const ko = await build('kpatch/cmdline-new-function.patch', 'newfn');
  const r = await runInVm({
    kernel: target,
    files: [{ from: ko, to: '/newfn.ko' }],
    timeoutMs: 400_000,
    script: [
      ...SHELL,
      'p=/sys/kernel/livepatch/livepatch_newfn',
      'insmod /newfn.ko',
      'wait_transition $p',
      'echo "first: $(cat /proc/cmdline)"',
      'echo "second: $(cat /proc/cmdline)"',
      'echo 0 > $p/enabled',
      'wait_transition $p',
      'echo "after: $(cat /proc/cmdline)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  assert.match(r.output, /first: .* suture_reads=1\n/);
  assert.match(r.output, /second: .* suture_reads=2\n/);
  assert.match(r.output, /after: (?!.*suture_reads)/);
  assert.equal([...r.kernelLog.matchAll(/suture-new: first read of \/proc\/cmdline/g)].length, 1);
});

test('a new function and a new global; a new pr_debug, off until enabled for the livepatch module', async () => {
  const global = await build('kpatch/version-new-global.patch', 'kp-newglob');
  const dyndbg = await build('kpatch/loadavg-pr-debug.patch', 'kp-dyndbg');
  const r = await runInVm({
    kernel: target,
    files: [
      { from: global, to: '/newglob.ko' },
      { from: dyndbg, to: '/dyndbg.ko' },
    ],
    timeoutMs: 400_000,
    script: [
      ...SHELL,
      'reads() { grep -o "kp_version_reads=[0-9]*" /proc/version || echo none; }',
      'echo "global before: $(reads)"',
      'insmod /newglob.ko',
      'wait_transition /sys/kernel/livepatch/livepatch_kp_newglob',
      'echo "global 1: $(reads)"',
      'echo "global 2: $(reads)"',
      'insmod /dyndbg.ko',
      'wait_transition /sys/kernel/livepatch/livepatch_kp_dyndbg',
      'echo "site: $(grep suture-dyndbg /proc/dynamic_debug/control)"',
      // read by `head` while the site is off, by `cat` once it is enabled for the livepatch module
      'head -c 1 /proc/loadavg >/dev/null',
      'echo "module livepatch_kp_dyndbg +p" > /proc/dynamic_debug/control',
      'cat /proc/loadavg >/dev/null',
      'echo "site on: $(grep suture-dyndbg /proc/dynamic_debug/control)"',
      'echo "logged off: $(dmesg | grep -c "suture-dyndbg: loadavg read by head" || true)"',
      'echo "logged on: $(dmesg | grep -c "suture-dyndbg: loadavg read by cat" || true)"',
      'echo 0 > /sys/kernel/livepatch/livepatch_kp_newglob/enabled',
      'wait_transition /sys/kernel/livepatch/livepatch_kp_newglob',
      'echo "global after: $(reads)"',
      '',
    ].join('\n'),
  });
  assertOk(r);
  // the new global starts at its initializer (41) when the patch loads, and only the patch counts in it
  assert.match(r.output, /global before: none\n/);
  assert.match(r.output, /global 1: kp_version_reads=42\n/);
  assert.match(r.output, /global 2: kp_version_reads=43\n/);
  assert.match(r.output, /global after: none\n/);
  // the carried descriptor is registered under the livepatch module, off (=_) until enabled (=p)
  assert.match(r.output, /site: fs\/proc\/loadavg\.c:\d+ \[livepatch_kp_dyndbg\]loadavg_proc_show =_ /);
  assert.match(r.output, /site on: .*\[livepatch_kp_dyndbg\]loadavg_proc_show =p /);
  assert.match(r.output, /logged off: 0\n/);
  assert.match(r.output, /logged on: 1\n/);
});

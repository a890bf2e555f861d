/*
 * The patch author's macros (src/klp/include/), proven in the exact target kernel under QEMU: the patches of
 * examples/kpatch/ (kpatch's vocabulary) and examples/klp/ (upstream's) build unchanged, load, and
 * show their effect:
 *   - callbacks on vmlinux and on a module (binfmt_misc, loaded before the livepatch) print to the
 *     kernel log in the documented order, pre_patch → post_patch on enable and pre_unpatch →
 *     post_unpatch on disable, with the patched function's effect in between;
 *   - a patched syscall (newuname): `uname -v` in the guest shows the patched version string, and
 *     the original once the patch is disabled.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from '../vm/index.js';
import type { VmResult } from '../vm/options.js';
import { buildLivepatch } from './pipeline.js';

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

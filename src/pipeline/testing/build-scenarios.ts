/*
 * VM scenarios of `suture build` with the kernel as a parameter, shared by build.vm.test.ts (6.1) and
 * lines.vm.test.ts (the 6.12 lines and the generic flavour): each builds a livepatch for `target`,
 * boots that exact kernel under QEMU and asserts what the running kernel shows patched and unpatched.
 *   - meminfoScenario: the blog's VmallocChunk diff through the `suture build` command line;
 *   - moduleScenario: a function of binfmt_misc, the module loaded before or after the livepatch.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import type { KernelTarget } from '../../kernel/target.js';
import { manifestSchema } from '../../manifest/manifest.js';
import { runInVm } from '../../vm/index.js';
import type { VmResult } from '../../vm/options.js';
import { buildLivepatch } from '../pipeline.js';

/** A unified diff of one edit of `file` in the target's own source tree. */
export function makePatch(target: KernelTarget, file: string, edit: (text: string) => string): string {
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = edit(text);
  assert.notEqual(changed, text, `the edit of ${file} applies`);
  return createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed);
}

/** The blog's VmallocChunk change, made against the target's meminfo.c (its lines move across versions). */
export function meminfoPatch(target: KernelTarget, path: string): string {
  writeFileSync(
    path,
    makePatch(target, 'fs/proc/meminfo.c', (t) => t.replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "')),
  );
  return path;
}

/** Shell: wait for the patch's transition to finish (enable or disable). */
export const WAIT = [
  'wait_transition() {',
  '  i=0',
  '  while [ -f "$1/transition" ] && [ "$(cat $1/transition)" = 1 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done',
  '}',
];

export function assertOk(r: VmResult): void {
  assert.equal(
    r.outcome,
    'ok',
    `${r.message}\n${r.output}\n${r.kernelLog.split('\n').slice(-30).join('\n')}`,
  );
}

/** `suture build DIFF` for target into `out`; then the module shows VMALLOCCHUNK until disabled. */
export async function meminfoScenario(target: KernelTarget, diff: string, out: string): Promise<void> {
  const cli = spawnSync(
    process.execPath,
    ['bin/suture.js', 'build', diff, '--kernel', target.release, '--name', 'meminfo', '-o', out],
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
}

/** A livepatch of bm_status_read (binfmt_misc), the module loaded `order` the livepatch. */
export async function moduleScenario(
  target: KernelTarget,
  order: 'before' | 'after',
  dir: string,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const patch = join(dir, `module-${order}.patch`);
  writeFileSync(
    patch,
    // 6.1: `char *s = enabled ? "enabled\n" : …`; 6.12: `s = misc->enabled ? "enabled\n" : …`
    makePatch(target, 'fs/binfmt_misc.c', (t) =>
      t.replace('? "enabled\\n" : "disabled\\n";', '? "ENABLED-by-suture\\n" : "disabled\\n";'),
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
}

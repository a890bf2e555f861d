/*
 * Data in kpatch-style patches through the front half of the pipeline on the real target kernel (no VM):
 * examples/kpatch/version-new-global.patch carries its new global variable and new global function,
 * a new global with the name of one vmlinux already defines (`sysctl_nr_open`, fs/file.c) is refused with
 * KLP-DATA-NEW-GLOBAL, a new global defined in one patched file and declared `extern` in another is
 * bound inside the module, and examples/kpatch/loadavg-pr-debug.patch carries its new pr_debug descriptor.
 * The VM half is in author-macros.vm.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { readElf } from '../elf/reader.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { BuildRefused, buildLivepatch } from './pipeline.js';
import { fileDiff } from './testing/file-diff.js';

const examples = resolve(process.cwd(), 'examples');
const dir = mkdtempSync(join(tmpdir(), 'suture-author-data-test-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

const objdiffOf = (diffPath: string) =>
  buildLivepatch({ diffPath, release: target.release, target, stopAfter: 'objdiff' });

test('a new global variable and a new global function are carried', async () => {
  const b = await objdiffOf(join(examples, 'kpatch', 'version-new-global.patch'));
  const diff = b.units[0]!.diff!;
  assert.deepEqual(diff.refusals, []);
  const global = diff.data.find((d) => d.name === 'kp_version_reads');
  assert.equal(global?.change, 'new');
  assert.equal(global?.included, true);
  assert.notEqual(global?.symbol.bind, 0, 'a global, not a static');
  const fn = diff.functions.find((f) => f.name === 'kp_version_count');
  assert.equal(fn?.change, 'new');
  assert.equal(fn?.included, true);
  assert.equal(diff.functions.find((f) => f.name === 'version_proc_show')?.change, 'changed');
});

test('a new global with the name of a variable vmlinux already defines is refused', async () => {
  const file = 'fs/proc/version.c';
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = text
    .replace(
      '#include "internal.h"\n',
      '#include "internal.h"\n\nunsigned int sysctl_nr_open = 1024 * 1024;\n',
    )
    .replace(
      '\treturn 0;\n}\n\nstatic int __init',
      '\tseq_printf(m, "%u\\n", sysctl_nr_open);\n\treturn 0;\n}\n\nstatic int __init',
    );
  assert.notEqual(changed, text);
  const patch = join(dir, 'clash.patch');
  writeFileSync(patch, fileDiff(file, text, changed));
  const e = await buildLivepatch({ diffPath: patch, release: target.release, target, checkOnly: true }).then(
    () => assert.fail('the build was not refused'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof BuildRefused, String(e));
  assert.deepEqual(
    e.refusals.map((r) => r.code),
    ['KLP-DATA-NEW-GLOBAL'],
  );
  assert.match(e.refusals[0]!.message, /`sysctl_nr_open`/);
});

test('a new global defined in one patched file and used by another binds inside the module', async () => {
  const edit = (file: string, declaration: string, use: string) => {
    const text = readFileSync(join(target.sourceTree, file), 'utf8');
    const end = '\treturn 0;\n}\n\nstatic int __init';
    const changed = text
      .replace('#include "internal.h"\n', `#include "internal.h"\n\n${declaration}\n`)
      .replace(end, `\t${use}\n${end}`);
    assert.equal(changed.length, text.length + declaration.length + use.length + 4, `${file} edited`);
    return fileDiff(file, text, changed);
  };
  const patch = join(dir, 'shared.patch');
  writeFileSync(
    patch,
    edit('fs/proc/version.c', 'unsigned long kp_shared_reads;', 'kp_shared_reads++;') +
      edit(
        'fs/proc/loadavg.c',
        'extern unsigned long kp_shared_reads;',
        'seq_printf(m, "%lu\\n", kp_shared_reads);',
      ),
  );
  const b = await buildLivepatch({
    diffPath: patch,
    release: target.release,
    target,
    name: 'shared',
    outDir: join(dir, 'shared'),
  });
  const ko = readElf(readFileSync(b.ko!), b.ko!);
  const named = ko.symbols.filter((s) => s.name.includes('kp_shared_reads'));
  assert.deepEqual(
    named.map((s) => s.name),
    ['kp_shared_reads'],
    'one symbol, no klp relocation symbol for it',
  );
  assert.notEqual(named[0]!.shndx, 0, 'defined in the module, not left to the running kernel');
});

test('a new pr_debug: its descriptor is carried, nothing refused', async () => {
  const b = await objdiffOf(join(examples, 'kpatch', 'loadavg-pr-debug.patch'));
  const diff = b.units[0]!.diff!;
  assert.deepEqual(diff.refusals, []);
  const carried = [...diff.selection.descriptors].map(([s, ds]) => `${s.name}: ${ds.length}`);
  assert.deepEqual(carried, ['__dyndbg: 1']);
  assert.equal(
    [...diff.references.values()].filter((r) => r.twinless).length,
    0,
    'no reference to a descriptor the running kernel lacks',
  );
});

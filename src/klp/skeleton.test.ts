/*
 * `suture new`: the blog's first livepatch for cmdline_proc_show, a skeleton that refuses to build until
 * its TODO is written for any other function, and refusals of bad names and existing files.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { declaredModules } from './kbuild.js';
import { livepatchSkeleton, writeSkeleton } from './skeleton.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-new-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const code = (c: string) => (e: unknown) => (e as SutureError).code === c;

test('cmdline_proc_show gives the blog example: a complete replacement printing "this has been live patched"', () => {
  const s = livepatchSkeleton({ symbol: 'cmdline_proc_show', name: 'livepatch_sample' });
  assert.equal(s.name, 'livepatch_sample');
  assert.deepEqual(Object.keys(s.files).sort(), ['Kbuild', 'Makefile', 'livepatch_sample.c']);
  const c = s.files['livepatch_sample.c'] ?? '';
  for (const line of [
    '#include <linux/livepatch.h>',
    '#include <linux/seq_file.h>',
    'static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)',
    '\tseq_printf(m, "%s\\n", "this has been live patched");',
    '\t\t.old_name = "cmdline_proc_show",',
    '\t\t.new_func = livepatch_cmdline_proc_show,',
    'static struct klp_object objs[] = {',
    '\t.mod = THIS_MODULE,',
    '\treturn klp_enable_patch(&patch);',
    'MODULE_LICENSE("GPL");',
    'MODULE_INFO(livepatch, "Y");',
  ]) {
    assert.ok(c.split('\n').includes(line), `missing line: ${line}`);
  }
  assert.ok(!c.includes('#error'));
  assert.ok(!c.includes('.name ='), 'klp_object.name is NULL: the function is in vmlinux');
  assert.deepEqual(declaredModules(s.files.Kbuild ?? ''), ['livepatch_sample']);
});

test('any other function gets the same structure and a TODO that stops the build until written', () => {
  const s = livepatchSkeleton({ symbol: 'meminfo_proc_show' });
  assert.equal(s.name, 'livepatch_meminfo_proc_show');
  const c = s.files['livepatch_meminfo_proc_show.c'] ?? '';
  assert.match(c, /#error "TODO: write the fixed meminfo_proc_show\(\)/);
  assert.match(c, /\.old_name = "meminfo_proc_show"/);
  assert.match(c, /\.new_func = livepatch_meminfo_proc_show/);
  const inModule = livepatchSkeleton({ symbol: 'fuse_dev_read', object: 'fuse' });
  assert.match(inModule.files['livepatch_fuse_dev_read.c'] ?? '', /\.name = "fuse",/);
});

test('bad symbols and module names are refused', () => {
  assert.throws(() => livepatchSkeleton({ symbol: 'foo bar' }), code('SKELETON-BAD-SYMBOL'));
  assert.throws(() => livepatchSkeleton({ symbol: 'x"); evil(' }), code('SKELETON-BAD-SYMBOL'));
  assert.throws(() => livepatchSkeleton({ symbol: 'f', name: '../x' }), code('SKELETON-BAD-NAME'));
  assert.throws(() => livepatchSkeleton({ symbol: 'f', object: 'a"b' }), code('SKELETON-BAD-OBJECT'));
});

test('files are written, and never over existing ones', () => {
  const dir = join(tmp, 'm');
  writeSkeleton(dir, { symbol: 'cmdline_proc_show' });
  assert.deepEqual(readdirSync(dir).sort(), ['Kbuild', 'Makefile', 'livepatch_cmdline_proc_show.c']);
  writeFileSync(join(dir, 'Kbuild'), 'obj-m := mine.o\n');
  assert.throws(() => writeSkeleton(dir, { symbol: 'cmdline_proc_show' }), code('SKELETON-EXISTS'));
  assert.equal(readFileSync(join(dir, 'Kbuild'), 'utf8'), 'obj-m := mine.o\n', 'nothing lost');
});

test('Kbuild obj-m declarations are read', () => {
  assert.deepEqual(declaredModules('obj-m := a.o\n'), ['a']);
  assert.deepEqual(declaredModules('obj-m += a.o b.o\nfoo-y := x.o\n'), ['a', 'b']);
  assert.deepEqual(declaredModules('obj-y := a.o\n'), []);
});

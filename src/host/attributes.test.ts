// The kernel's per-patch attributes: read only where the directory has them, shown as the kernel says.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attributesText, readStackOrder } from './attributes.js';
import { readLivepatch } from './livepatch.js';
import type { HostRoots } from './roots.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-attributes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function patchDir(name: string, files: Record<string, string>): HostRoots {
  const sys = join(dir, name, 'sys');
  const d = join(sys, 'kernel/livepatch', name);
  mkdirSync(join(d, 'vmlinux', 'cmdline_proc_show,1'), { recursive: true });
  mkdirSync(join(d, 'binfmt_misc', 'bm_status_read,1'), { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(join(d, f), v);
  return { sys } as HostRoots;
}

test('a 6.13+ patch directory: replace, stack_order and each object’s patched, as the kernel has them', () => {
  const roots = patchDir('livepatch_new', {
    enabled: '1\n',
    transition: '0\n',
    replace: '0\n',
    stack_order: '2\n',
    'vmlinux/patched': '1\n',
    'binfmt_misc/patched': '0\n',
  });
  const p = readLivepatch(roots, 'livepatch_new');
  assert.equal(p?.stackOrder, 2);
  assert.equal(p?.replace, false);
  assert.equal(attributesText(p!), 'replace 0, stack_order 2, binfmt_misc patched 0, vmlinux patched 1');
});

test('a 6.1 patch directory: no replace, no stack_order — nothing made up', () => {
  const roots = patchDir('livepatch_old', { enabled: '1\n', transition: '0\n', 'vmlinux/patched': '1\n' });
  const p = readLivepatch(roots, 'livepatch_old');
  assert.equal(p?.stackOrder, undefined);
  assert.equal(p?.replace, undefined);
  assert.equal(attributesText(p!), 'vmlinux patched 1');
  assert.equal(attributesText({ replace: undefined, stackOrder: undefined, objects: [] }), undefined);
});

test('a stack_order that is not a number is not shown as one', () => {
  const d = join(dir, 'garbled');
  mkdirSync(d);
  writeFileSync(join(d, 'stack_order'), 'x\n');
  assert.equal(readStackOrder(d, ['stack_order']), undefined);
  assert.equal(readStackOrder(d, []), undefined, 'not read where the kernel lacks it');
});

/*
 * KLP-CALLBACK-TWICE: one kind twice for one object names both places; the same kind for two objects,
 * and different kinds for one, are fine.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callbackTwice } from './callback-twice.js';

test('the same kind for one object twice is refused, naming both files and lines', () => {
  const d = callbackTwice.check([
    { object: 'vmlinux', callback: 'post_patch', file: 'fs/proc/meminfo.c', line: 30 },
    { object: 'binfmt_misc', callback: 'post_patch', file: 'fs/binfmt_misc.c', line: 40 },
    { object: 'vmlinux', callback: 'pre_patch', file: 'fs/proc/meminfo.c', line: 20 },
    { object: 'vmlinux', callback: 'post_patch', file: 'fs/proc/cmdline.c', line: 12 },
  ]);
  assert.deepEqual(
    d.map((x) => x.message),
    ['two post_patch callbacks for vmlinux: fs/proc/meminfo.c:30 and fs/proc/cmdline.c:12'],
  );
  assert.deepEqual(d[0]!.location, { file: 'fs/proc/cmdline.c', line: 12 });
});

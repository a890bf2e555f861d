/*
 * KLP-SYSCALL-NOT-IN-FILE on small texts: a macro for a syscall the original defines passes, in both
 * vocabularies and for COMPAT_SYSCALL_DEFINE; one for a syscall it lacks is refused with the name and
 * the macro's line; a prefix of a defined name is not taken for it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { syscallNotInFile } from './syscall-not-in-file.js';

const original = [
  '#include <linux/syscalls.h>',
  'SYSCALL_DEFINE1(newuname, struct new_utsname __user *, name)',
  '{ return 0; }',
  'COMPAT_SYSCALL_DEFINE1(sysinfo, struct compat_sysinfo __user *, info)',
  '{ return 0; }',
].join('\n');

test('a syscall macro for a syscall the file defines passes, in both vocabularies', () => {
  const patched = original
    .replace('SYSCALL_DEFINE1(newuname', 'KPATCH_SYSCALL_DEFINE1(newuname')
    .replace('COMPAT_SYSCALL_DEFINE1(sysinfo', 'KLP_SYSCALL_DEFINE1(sysinfo');
  assert.deepEqual(syscallNotInFile.check([{ path: 'kernel/sys.c', original, patched }]), []);
});

test('a syscall the file does not define is refused with its name and line', () => {
  const patched = `${original}\n\nKLP_SYSCALL_DEFINE2(newunam, int, a, int, b)\n{ return 0; }\n`;
  const d = syscallNotInFile.check([{ path: 'kernel/sys.c', original, patched }]);
  assert.equal(d.length, 1);
  assert.equal(d[0]!.code, 'KLP-SYSCALL-NOT-IN-FILE');
  assert.match(
    d[0]!.message,
    /KLP_SYSCALL_DEFINE2\(newunam, …\): kernel\/sys\.c defines no syscall `newunam`/,
  );
  assert.equal(d[0]!.location?.line, 7);
});

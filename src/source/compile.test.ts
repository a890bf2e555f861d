import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compilerArgv,
  type KbuildRecipe,
  missingDefinitions,
  parseDepFile,
  withoutSectionFlags,
} from './compile.js';

const recipe: KbuildRecipe = {
  object: 'fs/proc/meminfo.o',
  source: 'fs/proc/meminfo.c',
  cc: [
    'gcc',
    '-Wp,-MMD,fs/proc/.meminfo.o.d',
    '-nostdinc',
    '-I./arch/x86/include',
    '-I./include',
    '-O2',
    '-ffunction-sections',
    '-fdata-sections',
    '-c',
    '-o',
    'fs/proc/meminfo.o',
    'fs/proc/meminfo.c',
  ],
  module: false,
};

test('outputs go to the scratch dir; a patched unit searches the overlay first and its original dir for quotes', () => {
  assert.deepEqual(compilerArgv({ tree: '/t', recipe, outObject: '/w/original/fs/proc/meminfo.o' }), [
    'gcc',
    '-Wp,-MMD,/w/original/fs/proc/.meminfo.o.d',
    '-nostdinc',
    '-I./arch/x86/include',
    '-I./include',
    '-O2',
    '-ffunction-sections',
    '-fdata-sections',
    '-c',
    '-o',
    '/w/original/fs/proc/meminfo.o',
    'fs/proc/meminfo.c',
  ]);
  const patched = compilerArgv({
    tree: '/t',
    recipe,
    outObject: '/w/patched/fs/proc/meminfo.o',
    source: '/w/overlay/fs/proc/meminfo.c',
    overlay: '/w/overlay',
  });
  assert.deepEqual(patched.slice(3, 7), [
    '-I/w/overlay/arch/x86/include',
    '-I./arch/x86/include',
    '-I/w/overlay/include',
    '-I./include',
  ]);
  assert.deepEqual(patched.slice(-3), ['-iquote', '/t/fs/proc', '/w/overlay/fs/proc/meminfo.c']);
  assert.deepEqual(withoutSectionFlags(recipe.cc).includes('-ffunction-sections'), false);
  assert.equal(withoutSectionFlags(recipe.cc).length, recipe.cc.length - 2);
});

test('dependency files give tree-relative prerequisites', () => {
  const d =
    'fs/proc/meminfo.o: fs/proc/meminfo.c \\\n  include/linux/fs.h /t/include/linux/mm.h \\\n /usr/lib/gcc/stddef.h\n';
  assert.deepEqual(parseDepFile(d, '/t'), [
    'fs/proc/meminfo.c',
    'include/linux/fs.h',
    'include/linux/mm.h',
    '/usr/lib/gcc/stddef.h',
  ]);
});

test('compiler errors name the missing definitions', () => {
  const stderr = [
    'fs/x.c:3:5: error: ‘VM_CHUNK_SHIFT’ undeclared (first use in this function)',
    'fs/x.c:4:5: error: implicit declaration of function ‘vmalloc_chunk_pages’ [-Werror=implicit-function-declaration]',
    'fs/x.c:5:5: error: ‘struct blkg_policy_data’ has no member named ‘rcu_head’',
    'fs/x.c:6:5: error: unknown type name ‘blk_opf_t’',
    'fs/x.c:7:11: error: conflicting types for ‘free_area_init_core_hotplug’; have ‘int(struct pglist_data *)’',
    'fs/x.c:8:13: error: void value not ignored as it ought to be',
    ' 1188 |         if (free_area_init_core_hotplug(pgdat))',
    // 6.12 corpus, net/mptcp: mptcp_token_accept() returns bool only after the header half of the fix
    'net/x.c:3573:13: error: invalid use of void expression',
    ' 3573 |         if (!mptcp_token_accept(subflow_req, msk)) {',
    'fs/x.c:9:20: error: passing argument 1 of ‘atomic_inc’ from incompatible pointer type [-Werror=incompatible-pointer-types]',
  ].join('\n');
  assert.deepEqual(missingDefinitions(stderr).sort(), [
    'VM_CHUNK_SHIFT',
    'atomic_inc (argument type)',
    'blk_opf_t',
    'free_area_init_core_hotplug',
    'free_area_init_core_hotplug (return type)',
    'mptcp_token_accept (return type)',
    'rcu_head',
    'vmalloc_chunk_pages',
  ]);
  assert.deepEqual(missingDefinitions('fs/x.c:1:1: error: expected ‘;’ before ‘}’ token'), []);
});

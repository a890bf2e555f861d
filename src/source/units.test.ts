import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { parseRecipe } from './compile.js';
import type { AppliedFile } from './diff.js';
import { planUnits, readModuleOrder, unitTarget } from './units.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-units-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// what `make -n V=1 fs/fuse/dev.o` prints for the compile step (shortened flags, same structure)
const MAKE_LINE =
  "set -e;  echo '  gcc -Wp,-MMD,fs/fuse/.dev.o.d -nostdinc -I./include -O2 -DMODULE  -DKBUILD_BASENAME='\\''\"dev\"'\\'' -DKBUILD_MODNAME='\\''\"fuse\"'\\'' -c -o fs/fuse/dev.o fs/fuse/dev.c   ; ./tools/objtool/objtool --orc --module fs/fuse/dev.o';    trap 'rm -f fs/fuse/dev.o; trap - PIPE; kill -s PIPE $$' PIPE; gcc -Wp,-MMD,fs/fuse/.dev.o.d -nostdinc -I./include -O2 -DMODULE  -DKBUILD_BASENAME='\"dev\"' -DKBUILD_MODNAME='\"fuse\"' -c -o fs/fuse/dev.o fs/fuse/dev.c   ; ./tools/objtool/objtool --orc --module fs/fuse/dev.o; scripts/basic/fixdep fs/fuse/.dev.o.d fs/fuse/dev.o 'gcc ...' > fs/fuse/.dev.o.cmd; rm -f fs/fuse/.dev.o.d";

test("kbuild's printed recipe gives the compiler argv, objtool argv and the module name", () => {
  const r = parseRecipe(`make -f ./scripts/Makefile.build obj=fs/fuse\n${MAKE_LINE}\n`, 'fs/fuse/dev.o');
  assert.equal(r.source, 'fs/fuse/dev.c');
  assert.equal(r.cc[0], 'gcc');
  assert.ok(r.cc.includes('-DKBUILD_MODNAME="fuse"'));
  assert.deepEqual(r.objtool, ['./tools/objtool/objtool', '--orc', '--module', 'fs/fuse/dev.o']);
  assert.equal(r.module, true);
  assert.equal(r.modname, 'fuse');
  assert.throws(() => parseRecipe('nothing here\n', 'fs/fuse/dev.o'), /KBUILD-NO-RECIPE/);
});

test("module objects map to the image's module list; vmlinux objects to vmlinux", () => {
  const modulesDir = join(dir, 'mods');
  mkdirSync(modulesDir, { recursive: true });
  writeFileSync(
    join(modulesDir, 'modules.order'),
    'kernel/fs/fuse/fuse.ko\nkernel/net/netfilter/nf_conntrack-x.ko\n',
  );
  const mods = readModuleOrder(modulesDir);
  assert.equal(mods.get('nf_conntrack_x'), 'kernel/net/netfilter/nf_conntrack-x.ko');
  const r = parseRecipe(MAKE_LINE, 'fs/fuse/dev.o');
  assert.deepEqual(unitTarget(r, mods), { target: 'fuse', modulePath: 'kernel/fs/fuse/fuse.ko' });
  assert.deepEqual(unitTarget({ ...r, module: false }, mods), { target: 'vmlinux' });
  assert.throws(() => unitTarget({ ...r, modname: 'ath9k' }, mods), /UNIT-NOT-BUILT/);
});

// ---- against the real target kernel (kernel cache) ----
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});

const changed = (path: string, kind: AppliedFile['kind'] = 'modify'): AppliedFile => ({
  path,
  kind,
  original: join(target.sourceTree, path),
  patched: join(target.sourceTree, path),
  notes: [],
});

test('real kernel: meminfo.c → vmlinux, fuse/dev.c → module fuse, Documentation ignored', () => {
  const plan = planUnits(
    [changed('fs/proc/meminfo.c'), changed('fs/fuse/dev.c'), changed('Documentation/filesystems/proc.rst')],
    target,
  );
  const byObj = Object.fromEntries(plan.units.map((u) => [u.object, [u.target, u.modulePath]]));
  assert.deepEqual(byObj['fs/proc/meminfo.o'], ['vmlinux', undefined]);
  assert.deepEqual(byObj['fs/fuse/dev.o'], ['fuse', 'kernel/fs/fuse/fuse.ko']);
  assert.deepEqual(
    plan.ignored.map((i) => i.path),
    ['Documentation/filesystems/proc.rst'],
  );
});

test('real kernel: a header is followed to the units that include it and reported', () => {
  const plan = planUnits([changed('fs/pnode.h')], target);
  assert.deepEqual(plan.headers, [
    { header: 'fs/pnode.h', candidates: ['fs/namespace.c', 'fs/pnode.c', 'fs/proc_namespace.c'] },
  ]);
  assert.deepEqual(plan.units.map((u) => [u.object, u.target, u.viaHeaders]).sort(), [
    ['fs/namespace.o', 'vmlinux', ['fs/pnode.h']],
    ['fs/pnode.o', 'vmlinux', ['fs/pnode.h']],
    ['fs/proc_namespace.o', 'vmlinux', ['fs/pnode.h']],
  ]);
});

test('real kernel: a .c file #included by another (sched/deadline.c) is followed to its includer', () => {
  const plan = planUnits([changed('kernel/sched/deadline.c')], target);
  assert.deepEqual(plan.headers, [
    { header: 'kernel/sched/deadline.c', candidates: ['kernel/sched/build_policy.c'] },
  ]);
  assert.deepEqual(
    plan.units.map((u) => [u.object, u.target]),
    [['kernel/sched/build_policy.o', 'vmlinux']],
  );
});

test('real kernel: a widely included header, assembly, a Makefile and a new unit are refused', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return isSutureError(e) ? e.code : String(e);
    }
    return 'no error';
  };
  assert.equal(
    code(() => planUnits([changed('fs/fuse/fuse_i.h')], target)),
    'UNIT-HEADER-WIDE',
  );
  assert.equal(
    code(() => planUnits([changed('arch/x86/entry/entry_64.S')], target)),
    'UNIT-UNSUPPORTED',
  );
  assert.equal(
    code(() => planUnits([changed('fs/proc/Makefile')], target)),
    'UNIT-UNSUPPORTED',
  );
  assert.equal(
    code(() => planUnits([changed('fs/proc/new.c', 'add')], target)),
    'UNIT-NEW-FILE',
  );
  assert.equal(
    code(() => planUnits([changed('Documentation/index.rst')], target)),
    'UNIT-NONE',
  );
});

test('real kernel: a new header or a new .c included by a changed unit is compiled with it', () => {
  const overlay = join(dir, 'overlay-new');
  mkdirSync(join(overlay, 'fs/proc'), { recursive: true });
  const meminfo = join(overlay, 'fs/proc/meminfo.c');
  writeFileSync(meminfo, '#include "meminfo_extra.h"\n#include "meminfo_extra.c"\nint x;\n');
  writeFileSync(join(overlay, 'fs/proc/meminfo_extra.h'), '#define EXTRA 1\n');
  writeFileSync(join(overlay, 'fs/proc/meminfo_extra.c'), 'static int extra(void) { return EXTRA; }\n');
  const plan = planUnits(
    [
      { ...changed('fs/proc/meminfo.c'), patched: meminfo },
      {
        path: 'fs/proc/meminfo_extra.h',
        kind: 'add',
        patched: join(overlay, 'fs/proc/meminfo_extra.h'),
        notes: [],
      },
      {
        path: 'fs/proc/meminfo_extra.c',
        kind: 'add',
        patched: join(overlay, 'fs/proc/meminfo_extra.c'),
        notes: [],
      },
    ],
    target,
  );
  assert.deepEqual(
    plan.units.map((u) => [u.object, u.target, u.viaHeaders.sort()]),
    [['fs/proc/meminfo.o', 'vmlinux', ['fs/proc/meminfo_extra.c', 'fs/proc/meminfo_extra.h']]],
  );
  assert.deepEqual(
    plan.headers.map((h) => [h.header, h.candidates]),
    [
      ['fs/proc/meminfo_extra.h', ['fs/proc/meminfo.c']],
      ['fs/proc/meminfo_extra.c', ['fs/proc/meminfo.c']],
    ],
  );
});

test('real kernel: a deleted file is fine when nothing built includes it, refused when something does', () => {
  const deleted = (path: string): AppliedFile => ({
    path,
    kind: 'delete',
    original: join(target.sourceTree, path),
    notes: [],
  });
  // fs/proc/internal.h is still included by the unchanged fs/proc units
  try {
    planUnits([changed('fs/proc/meminfo.c'), deleted('fs/proc/internal.h')], target);
    assert.fail('a deleted header still included is refused');
  } catch (e) {
    assert.ok(isSutureError(e));
    assert.equal(e.code, 'UNIT-UNSUPPORTED');
    assert.match(
      e.diagnostic.message,
      /deletes `fs\/proc\/internal\.h`, which fs\/proc\/array\.c, .* still #include$/,
    );
  }
  // a deleted built unit: its code runs in the kernel
  assert.throws(() => planUnits([deleted('fs/proc/meminfo.c')], target), /UNIT-UNSUPPORTED/);
  // a header no file includes
  const plan = planUnits([changed('fs/proc/meminfo.c'), deleted('fs/proc/never-included.h')], target);
  assert.deepEqual(plan.ignored, [
    { path: 'fs/proc/never-included.h', why: 'deleted; nothing built includes it' },
  ]);
  assert.deepEqual(
    plan.units.map((u) => u.object),
    ['fs/proc/meminfo.o'],
  );
});

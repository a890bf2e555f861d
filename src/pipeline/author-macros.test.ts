/*
 * The patch author's macros through the front half of the pipeline on the real target kernel (no VM):
 * the examples' records as the patched object holds them (kind, line, object, trampoline), the
 * registration they give (the klp_object's callbacks), ignore records leaving a changed function out,
 * and the bad input: a callback kind twice for one object (both places named), a syscall macro in a
 * file without that syscall (its name); KPATCH_IGNORE_SECTION and KPATCH_FORCE_UNSAFE.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { isCached } from '../kernel/releases.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { readAuthorRecords } from '../klp/author-records.js';
import { livepatchCallbacks } from '../klp/callbacks.js';
import { registrationSource } from '../klp/registration.js';
import { BuildRefused, buildLivepatch } from './pipeline.js';
import { fileDiff } from './testing/file-diff.js';

const examples = resolve(process.cwd(), 'examples');
const dir = mkdtempSync(join(tmpdir(), 'suture-author-macros-test-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

function makePatch(name: string, file: string, edit: (text: string) => string): string {
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = edit(text);
  assert.notEqual(changed, text, `the edit of ${file} applies`);
  const p = join(dir, `${name}.patch`);
  writeFileSync(p, fileDiff(file, text, changed));
  return p;
}

async function refusalsOf(patch: string): Promise<BuildRefused> {
  try {
    await buildLivepatch({ diffPath: patch, release: target.release, target, checkOnly: true });
  } catch (e) {
    if (e instanceof BuildRefused) return e;
    throw e;
  }
  assert.fail('the build was not refused');
}

const objdiffOf = (diffPath: string) =>
  buildLivepatch({ diffPath, release: target.release, target, stopAfter: 'objdiff' });

test('kpatch callbacks on vmlinux: four records, carried trampolines, the klp_object callbacks', async () => {
  const b = await objdiffOf(join(examples, 'kpatch', 'meminfo-callbacks.patch'));
  const u = b.units[0]!;
  const records = readAuthorRecords(u.diff!.patched);
  assert.deepEqual(
    records.map((r) => (r.kind === 'callback' ? `${r.callback} ${r.object}` : r.kind)),
    ['pre_patch vmlinux', 'post_patch vmlinux', 'pre_unpatch vmlinux', 'post_unpatch vmlinux'],
  );
  // the lines of the macros in the patched file
  const patched = readFileSync(join(examples, 'kpatch', 'meminfo-callbacks.patch'), 'utf8');
  assert.ok(patched.includes('+KPATCH_PRE_PATCH_CALLBACK(vmlinux_pre_patch);'));
  assert.ok(
    records.every((r) => r.line > 20 && r.line < 50),
    records.map((r) => r.line).join(','),
  );
  const callbacks = livepatchCallbacks([{ source: u.unit.source, target: u.unit.target, diff: u.diff! }]);
  const vmlinux = callbacks.get('vmlinux')!;
  assert.deepEqual(Object.keys(vmlinux).sort(), ['post_patch', 'post_unpatch', 'pre_patch', 'pre_unpatch']);
  for (const symbol of Object.values(vmlinux))
    assert.ok(
      u.diff!.functions.some((f) => f.name === symbol && f.included && f.change === 'new'),
      symbol,
    );
  const c = registrationSource('x', false, [
    {
      object: 'vmlinux',
      functions: [{ oldName: 'meminfo_proc_show', newSymbol: 'meminfo_proc_show', sympos: 0 }],
      callbacks: vmlinux,
    },
  ]);
  assert.match(
    c,
    /extern int suture_cb_0_pre_patch\(struct klp_object \*obj\) __asm__\("__suture_pre_patch_kmod_proc_on_line_\d+"\);/,
  );
  assert.match(
    c,
    /\.callbacks = \{ \.pre_patch = suture_cb_0_pre_patch, \.post_patch = suture_cb_0_post_patch, \.pre_unpatch = suture_cb_0_pre_unpatch, \.post_unpatch = suture_cb_0_post_unpatch \}/,
  );
});

test('a callback on a module names the module as its object', async () => {
  const b = await objdiffOf(join(examples, 'kpatch', 'binfmt-misc-callbacks.patch'));
  const records = readAuthorRecords(b.units[0]!.diff!.patched);
  assert.deepEqual(
    records.map((r) => r.object),
    ['binfmt_misc', 'binfmt_misc', 'binfmt_misc', 'binfmt_misc'],
  );
});

test('the syscall macros move the change into the traceable __x64_sys_/__ia32_sys_ stubs', async () => {
  for (const vocabulary of ['kpatch', 'klp']) {
    const b = await objdiffOf(join(examples, vocabulary, 'newuname-syscall.patch'));
    const changed = b.units[0]!.diff!.functions.filter((f) => f.change === 'changed').map((f) => f.name);
    assert.ok(
      changed.includes('__x64_sys_newuname') && changed.includes('__ia32_sys_newuname'),
      changed.join(', '),
    );
    assert.ok(!changed.includes('__do_sys_newuname'), changed.join(', '));
  }
});

test('a callback kind twice for one object is refused, naming both places', async () => {
  const patch = makePatch('twice', 'fs/proc/meminfo.c', (t) =>
    t
      .replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "')
      .replace(
        '#include "internal.h"\n',
        [
          '#include "internal.h"',
          '#include "kpatch-macros.h"',
          'static void one(patch_object *obj) { pr_info("one\\n"); }',
          'KPATCH_POST_PATCH_CALLBACK(one);',
          'static void two(void) { pr_info("two\\n"); }',
          'KPATCH_LOAD_HOOK(two);',
          '',
        ].join('\n'),
      ),
  );
  const r = await refusalsOf(patch);
  const d = r.refusals.find((x) => x.code === 'KLP-CALLBACK-TWICE');
  assert.ok(d, r.refusals.map((x) => x.code).join(', '));
  assert.match(
    d.message,
    /two post_patch callbacks for vmlinux: fs\/proc\/meminfo\.c:\d+ and fs\/proc\/meminfo\.c:\d+/,
  );
  const [first, second] = [...d.message.matchAll(/:(\d+)/g)].map((m) => Number(m[1]));
  assert.ok(first! < second!, d.message);
});

test('a syscall macro in a file without that syscall is refused with its name', async () => {
  const patch = makePatch('no-syscall', 'fs/proc/meminfo.c', (t) =>
    t.replace(
      '#include "internal.h"\n',
      [
        '#include "internal.h"',
        '#include "kpatch-syscall.h"',
        'KPATCH_SYSCALL_DEFINE1(newuname, struct new_utsname __user *, name)',
        '{',
        '\treturn -EFAULT;',
        '}',
        '',
      ].join('\n'),
    ),
  );
  const r = await refusalsOf(patch);
  const d = r.refusals.find((x) => x.code === 'KLP-SYSCALL-NOT-IN-FILE');
  assert.ok(d, r.refusals.map((x) => x.code).join(', '));
  assert.match(
    d.message,
    /KPATCH_SYSCALL_DEFINE1\(newuname, …\): fs\/proc\/meminfo\.c defines no syscall `newuname`/,
  );
});

test('KPATCH_IGNORE_FUNCTION leaves a changed function out of the patch', async () => {
  const patch = makePatch('ignore', 'fs/proc/meminfo.c', (t) =>
    t
      .replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "')
      .replace(
        '\treturn 0;\n}\n\nstatic int __init proc_meminfo_init',
        '\treturn 0;\n}\n#include "kpatch-macros.h"\nKPATCH_IGNORE_FUNCTION(meminfo_proc_show);\n\nstatic int __init proc_meminfo_init',
      ),
  );
  const r = await refusalsOf(patch);
  assert.deepEqual(
    r.refusals.map((x) => x.code),
    ['BUILD-NO-CHANGE'],
  );
});

test('KPATCH_IGNORE_SECTION leaves the functions of a section out; KPATCH_FORCE_UNSAFE changes nothing', async () => {
  const withMacro = (name: string, macro: string) =>
    makePatch(name, 'fs/proc/meminfo.c', (t) =>
      t
        .replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "')
        .replace(
          '\treturn 0;\n}\n\nstatic int __init proc_meminfo_init',
          `\treturn 0;\n}\n#include "kpatch-macros.h"\n${macro};\n\nstatic int __init proc_meminfo_init`,
        ),
    );
  const ignored = await refusalsOf(
    withMacro('ignore-section', 'KPATCH_IGNORE_SECTION(".text.meminfo_proc_show")'),
  );
  assert.deepEqual(
    ignored.refusals.map((x) => x.code),
    ['BUILD-NO-CHANGE'],
  );
  const b = await objdiffOf(withMacro('force-unsafe', 'KPATCH_FORCE_UNSAFE(meminfo_proc_show)'));
  const diff = b.units[0]!.diff!;
  assert.deepEqual(
    readAuthorRecords(diff.patched).map((r) => `${r.kind} ${r.symbol}`),
    ['force-unsafe meminfo_proc_show'],
  );
  assert.ok(
    diff.functions.some((f) => f.name === 'meminfo_proc_show' && f.change === 'changed' && f.included),
  );
});

// trixie kernels compile inside a gcc-14 build root, which sees only the directories bound into it:
// the author headers live in the checkout, so they must be among them
const TRIXIE = '6.12.117+deb13-cloud-amd64';
test('the author headers reach the compiler inside the trixie build root', async (t) => {
  if (!isCached(TRIXIE) && !process.env.SUTURE_FETCH_TESTS)
    return t.skip(`${TRIXIE} is not cached and SUTURE_FETCH_TESTS is unset (scripts/test.sh sets it)`);
  const trixie = await ensureKernel(TRIXIE);
  const b = await buildLivepatch({
    diffPath: join(examples, 'kpatch', 'meminfo-callbacks.patch'),
    release: trixie.release,
    target: trixie,
    fuzz: 1, // the example is written against 6.1's meminfo.c
    stopAfter: 'objdiff',
  });
  const u = b.units[0]!;
  assert.deepEqual(
    readAuthorRecords(u.diff!.patched).map((r) =>
      r.kind === 'callback' ? `${r.callback} ${r.object}` : r.kind,
    ),
    ['pre_patch vmlinux', 'post_patch vmlinux', 'pre_unpatch vmlinux', 'post_unpatch vmlinux'],
  );
});

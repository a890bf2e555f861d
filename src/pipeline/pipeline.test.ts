/*
 * The build pipeline against the real target kernel, up to the object diff (no VM): the blog's meminfo
 * patch, line-number stability with the kernel's own WARN_ONCE, and a fix that needs definitions the
 * old tree does not have. The module stage and loading are proven by build.vm.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { createTwoFilesPatch } from 'diff';
import { isSutureError } from '../diagnostic.js';
import { readElfFile } from '../elf/index.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { compileObject } from '../source/compile.js';
import { applyDiff, parseDiff } from '../source/diff.js';
import { BuildRefused, type BuildResult, buildLivepatch, defaultName } from './pipeline.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');
const dir = mkdtempSync(join(tmpdir(), 'suture-pipeline-test-'));
const kept: BuildResult[] = [];
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => {
  for (const r of kept) rmSync(r.workDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

/** A diff of one tree file, made by editing its text. */
function makePatch(file: string, edit: (text: string) => string): string {
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = edit(text);
  assert.notEqual(changed, text, `the edit of ${file} applies`);
  const p = join(dir, `${file.replace(/\W/g, '_')}.patch`);
  writeFileSync(p, createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed));
  return p;
}

test('names default from the diff file', () => {
  assert.equal(defaultName('/x/Meminfo String.patch'), 'meminfo-string');
  assert.equal(defaultName('fs_pipe.diff'), 'fs_pipe');
});

test("the blog's meminfo patch: one changed function, every stage timed", async () => {
  const stages: string[] = [];
  const r = await buildLivepatch({
    diffPath: MEMINFO,
    release: target.release,
    stopAfter: 'objdiff',
    onProgress: (e) => {
      if (e.kind === 'stage-done') stages.push(e.stage);
    },
  });
  assert.deepEqual(stages, ['kernel', 'diff', 'lines', 'units', 'compile', 'verify', 'objdiff']);
  assert.deepEqual(
    r.timings.map((t) => t.stage),
    stages,
  );
  assert.equal(r.summary.length, 1);
  assert.match(r.summary[0]!, /^meminfo\.o: changed function: meminfo_proc_show\b/);
  assert.equal(r.units[0]!.unit.target, 'vmlinux');
  assert.equal(r.units[0]!.sympos.get('meminfo_proc_show'), 0);
});

test('lines added above a function using WARN_ONCE: it stays the same, its bug-table line too (only with #line)', async () => {
  const file = 'fs/proc/inode.c';
  const patch = makePatch(file, (t) =>
    t.replace(
      'static void proc_free_inode(struct inode *inode)\n{\n',
      'static void proc_free_inode(struct inode *inode)\n{\n\t/* nothing to free for a never-initialised inode */\n\tif (!inode)\n\t\treturn;\n',
    ),
  );
  const r = await buildLivepatch({
    diffPath: patch,
    release: target.release,
    stopAfter: 'objdiff',
    keepWork: true,
  });
  kept.push(r);
  const fns = new Map(r.units[0]!.diff!.functions.map((f) => [f.name, f.change]));
  assert.equal(fns.get('proc_free_inode'), 'changed');
  assert.equal(fns.get('proc_show_options'), 'same', 'the WARN_ONCE user below the hunk is unchanged');
  assert.deepEqual(r.summary, [expectedLine(r, 'proc_free_inode')]);

  // the bug table holds WARN_ONCE's __LINE__: byte-identical with #line, different without it
  const bugTable = async (o: string) => Buffer.from((await readElfFile(o)).section('__bug_table')!.data);
  const original = await bugTable(r.units[0]!.original.object);
  assert.deepEqual(await bugTable(r.units[0]!.patched.object), original);
  const raw = applyDiff(
    parseDiff(readFileSync(patch, 'utf8'), patch, target.sourceTree),
    target.sourceTree,
    join(dir, 'raw'),
  );
  const without = await compileObject({
    tree: target.sourceTree,
    recipe: r.units[0]!.unit.recipe,
    outObject: join(dir, 'raw-out', 'inode.o'),
    source: raw[0]!.patched!,
  });
  assert.notDeepEqual(await bugTable(without.object), original, 'without #line the line constant moves');
});

function expectedLine(r: BuildResult, name: string): string {
  const f = r.units[0]!.diff!.functions.find((x) => x.name === name)!;
  return `inode.o: changed function: ${name}${f.reason ? ` (${f.reason})` : ''}`;
}

test('a fix needing definitions the old tree lacks is refused, naming them', async () => {
  const patch = makePatch('fs/proc/meminfo.c', (t) =>
    t.replace(
      'show_val_kb(m, "VmallocChunk:   ", 0ul);',
      'show_val_kb(m, "VmallocChunk:   ", vmalloc_chunk_pages(VM_CHUNK_SHIFT));',
    ),
  );
  await assert.rejects(
    buildLivepatch({ diffPath: patch, release: target.release, stopAfter: 'objdiff' }),
    (e: unknown) => {
      assert.ok(e instanceof BuildRefused);
      assert.equal(e.refusals[0]!.code, 'BUILD-MISSING-DEFINITIONS');
      assert.match(e.refusals[0]!.message, /vmalloc_chunk_pages/);
      assert.match(e.refusals[0]!.message, /VM_CHUNK_SHIFT/);
      return true;
    },
  );
});

test('a diff that does not apply to this kernel stops at the diff stage with the hunk', async () => {
  const p = join(dir, 'stale.patch');
  writeFileSync(
    p,
    readFileSync(MEMINFO, 'utf8').replace(
      '-\tshow_val_kb(m, "VmallocChunk:',
      '-\tshow_val_kb(m, "VmallocBlock:',
    ),
  );
  await assert.rejects(
    buildLivepatch({ diffPath: p, release: target.release, stopAfter: 'objdiff' }),
    (e: unknown) => {
      assert.ok(isSutureError(e));
      assert.equal(e.code, 'DIFF-HUNK-FAILED');
      assert.ok((e.diagnostic.detail ?? []).some((l) => l.includes('VmallocBlock')));
      return true;
    },
  );
});

test('a changed header is followed to the units including it; only functions that use it change', async () => {
  const patch = makePatch('fs/proc/fd.h', (t) =>
    t.replace('\treturn PROC_I(inode)->fd;', '\treturn PROC_I(inode)->fd & 0x7fffffff;'),
  );
  const notes: string[] = [];
  let summary: string[];
  try {
    const r = await buildLivepatch({
      diffPath: patch,
      release: target.release,
      stopAfter: 'objdiff',
      onProgress: (e) => {
        if (e.kind === 'note') notes.push(e.text);
        if (e.kind === 'stage-done' && e.stage === 'units') notes.push(e.summary);
      },
    });
    summary = r.summary;
  } catch (e) {
    // the back half may refuse the lock-prefix table of these functions; the front half's work is done
    assert.ok(e instanceof BuildRefused, String(e));
    assert.deepEqual([...new Set(e.refusals.map((d) => d.code))], ['KLP-SPECIAL-SECTION']);
    summary = (e.diagnostic.detail ?? []).map((l) => l.trim());
  }
  assert.ok(
    notes.includes('header fs/proc/fd.h is included by: fs/proc/base.c, fs/proc/fd.c'),
    notes.join('\n'),
  );
  assert.ok(
    notes.some((n) => n.startsWith('fs/proc/base.o → vmlinux, fs/proc/fd.o → vmlinux')),
    notes.join('\n'),
  );
  assert.ok(summary.length > 0);
  assert.ok(
    summary.every((l) => l.startsWith('fd.o: changed function: ')),
    summary.join('\n'),
  );
  assert.ok(
    summary.some((l) => /: proc_fd_link\b/.test(l)),
    summary.join('\n'),
  );
});

test('verify: when section flags only change the layout (lib/string.c bcmp), the exact kbuild build must match', async () => {
  const notes: string[] = [];
  const r = await buildLivepatch({
    diffPath: resolve(process.cwd(), '..', 'shared', 'corpus', 'stable-6.1.187-to-192', 'lib_string.patch'),
    release: target.release,
    stopAfter: 'verify',
    onProgress: (e) => {
      if (e.kind === 'note' && e.stage === 'verify') notes.push(e.text);
    },
  });
  assert.equal(r.units[0]!.unit.object, 'lib/string.o');
  assert.equal(notes.length, 1);
  assert.match(
    notes[0]!,
    /^lib\/string\.o matches when built exactly as kbuild does; .*bcmp: size \d+ here, \d+ shipped/,
  );
});

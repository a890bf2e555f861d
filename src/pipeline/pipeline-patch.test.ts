/*
 * Diffs as GNU patch applies them, on the real target kernel up to the object diff: the blog's meminfo
 * fix with its hunk moved by three lines (applied, DIFF-OFFSET warning), with a context line altered
 * (fuzz 1: refused as DIFF-FUZZ without --fuzz, built with --fuzz 1 and a warning), made from above
 * the tree (`linux-6.1.187/fs/proc/meminfo.c`, detected as -p1); and files the diff creates: a new
 * header and a new .c included by meminfo.c compile with it, a new .c of its own is UNIT-NEW-FILE.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { createTwoFilesPatch } from 'diff';
import type { Diagnostic } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { BuildRefused, type BuildResult, buildLivepatch } from './pipeline.js';

const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');
const dir = mkdtempSync(join(tmpdir(), 'suture-pipeline-fuzz-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** the blog's meminfo patch, edited */
function variant(name: string, edit: (text: string) => string): string {
  const text = readFileSync(MEMINFO, 'utf8');
  const changed = edit(text);
  assert.notEqual(changed, text, `the ${name} edit applies`);
  const p = join(dir, `${name}.patch`);
  writeFileSync(p, changed);
  return p;
}

async function build(diffPath: string, fuzz?: number): Promise<{ r: BuildResult; events: Diagnostic[] }> {
  const events: Diagnostic[] = [];
  const r = await buildLivepatch({
    diffPath,
    release: target.release,
    stopAfter: 'objdiff',
    fuzz,
    onProgress: (e) => {
      if (e.kind === 'warning') events.push(e.diagnostic);
    },
  });
  return { r, events };
}

const CONTEXT = '\tseq_printf(m, "VmallocTotal:   %8lu kB\\n",';

test('the meminfo fix with its hunk 3 lines off: built, the offset a warning event and in the result', async () => {
  const p = variant('offset', (t) => t.replace('@@ -128,7 +128,7 @@', '@@ -125,7 +125,7 @@'));
  const { r, events } = await build(p);
  assert.match(r.summary[0]!, /^meminfo\.o: changed function: meminfo_proc_show\b/);
  const offsets = r.warnings.filter((w) => w.code === 'DIFF-OFFSET');
  assert.equal(offsets.length, 1);
  assert.match(
    offsets[0]!.message,
    /hunk #1 of `fs\/proc\/meminfo\.c` applied at line 128 \(offset \+3 lines\)/,
  );
  assert.deepEqual(
    events.map((e) => e.code),
    r.warnings.map((w) => w.code),
  );
});

test('the meminfo fix with a context line altered: DIFF-FUZZ without --fuzz, built with --fuzz 1', async () => {
  const p = variant('fuzz1', (t) =>
    t.replace(` ${CONTEXT}`, ` ${CONTEXT.replace('VmallocTotal', 'VmallocTotl')}`),
  );
  await assert.rejects(build(p), (e: unknown) => {
    assert.ok(e instanceof BuildRefused);
    assert.deepEqual(
      e.refusals.map((d) => d.code),
      ['DIFF-FUZZ'],
    );
    assert.match(e.refusals[0]!.message, /it would land at line 128/);
    assert.match(e.refusals[0]!.hint ?? '', /--fuzz 1/);
    return true;
  });
  const { r } = await build(p, 1);
  assert.match(r.summary[0]!, /^meminfo\.o: changed function: meminfo_proc_show\b/);
  const fuzzy = r.warnings.filter((w) => w.code === 'DIFF-FUZZ');
  assert.equal(fuzzy.length, 1);
  assert.equal(fuzzy[0]!.severity, 'warning');
  assert.match(fuzzy[0]!.message, /applied with fuzz 1 at line 128/);
  await assert.rejects(build(p, 4), /fuzz 4 is out of range/);
});

test('a diff made above the tree (linux-6.1.187/fs/...) is detected as -p1 and builds', async () => {
  const p = variant('top-dir', (t) =>
    t
      .replace(/^diff --git .*\n/m, '')
      .replace('--- a/fs/proc/meminfo.c', '--- linux-6.1.187.orig/fs/proc/meminfo.c')
      .replace('+++ b/fs/proc/meminfo.c', '+++ linux-6.1.187/fs/proc/meminfo.c'),
  );
  const notes: string[] = [];
  const r = await buildLivepatch({
    diffPath: p,
    release: target.release,
    stopAfter: 'objdiff',
    onProgress: (e) => {
      if (e.kind === 'stage-done' && e.stage === 'diff') notes.push(e.summary);
    },
  });
  assert.match(notes[0]!, /-p1/);
  assert.match(r.summary[0]!, /^meminfo\.o: changed function: meminfo_proc_show\b/);
});

/** a section of a diff creating `path` with `lines` */
const created = (path: string, lines: string[]) =>
  `diff --git a/${path} b/${path}\nnew file mode 100644\n--- /dev/null\n+++ b/${path}\n@@ -0,0 +1,${lines.length} @@\n${lines.map((l) => `+${l}`).join('\n')}\n`;

test('a new header and a new .c #included by the changed meminfo.c are compiled with it', async () => {
  const file = 'fs/proc/meminfo.c';
  const text = readFileSync(join(target.sourceTree, file), 'utf8');
  const changed = text
    .replace(
      '#include "internal.h"\n',
      '#include "internal.h"\n#include "meminfo_chunk.h"\n#include "meminfo_chunk.c"\n',
    )
    .replace('show_val_kb(m, "VmallocChunk:   ", 0ul);', 'show_val_kb(m, meminfo_chunk_label(), 0ul);');
  const p = join(dir, 'new-files.patch');
  writeFileSync(
    p,
    createTwoFilesPatch(`a/${file}`, `b/${file}`, text, changed) +
      created('fs/proc/meminfo_chunk.h', ['#define MEMINFO_CHUNK_LABEL "VMALLOCCHUNK:   "']) +
      created('fs/proc/meminfo_chunk.c', [
        'static const char *meminfo_chunk_label(void)',
        '{',
        '\treturn MEMINFO_CHUNK_LABEL;',
        '}',
      ]),
  );
  const { r } = await build(p);
  assert.match(r.summary.join('\n'), /^meminfo\.o: changed function: meminfo_proc_show\b/m);
  assert.deepEqual(
    r.plan.headers.map((h) => [h.header, h.candidates]),
    [
      ['fs/proc/meminfo_chunk.h', [file]],
      ['fs/proc/meminfo_chunk.c', [file]],
    ],
  );
});

test('a new .c that is its own unit is refused as UNIT-NEW-FILE', async () => {
  const p = join(dir, 'new-unit.patch');
  writeFileSync(p, created('fs/proc/meminfo_chunk.c', ['int meminfo_chunk(void)', '{', '\treturn 0;', '}']));
  await assert.rejects(build(p), (e: unknown) => {
    assert.ok(e instanceof BuildRefused);
    assert.deepEqual(
      e.refusals.map((d) => d.code),
      ['UNIT-NEW-FILE'],
    );
    assert.match(e.refusals[0]!.why ?? '', /Makefile/);
    return true;
  });
});

/*
 * Diffs as GNU patch applies them, on the real target kernel up to the object diff: the blog's meminfo
 * fix with its hunk moved by three lines (applied, DIFF-OFFSET warning), with a context line altered
 * (fuzz 1: refused as DIFF-FUZZ without --fuzz, built with --fuzz 1 and a warning), and made from above
 * the tree (`linux-6.1.187/fs/proc/meminfo.c`, detected as -p1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
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

/*
 * The corpus as a CI test: every real stable fix of ../shared/corpus/stable-6.1.187-to-192/ against
 * 6.1.0-53-cloud-amd64 is built and, when it builds, loaded in the exact kernel under QEMU (transition
 * complete, smoke script, disabled, unloaded). The goal of issue 5: each patch either loads or is
 * refused with a specific rule; none crashes the VM or fails with an unexplained error. The table is
 * kept as artifacts/corpus.txt.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { CORPUS_DIR, CORPUS_RELEASE, corpusFiles, formatTable, runCorpus } from './corpus.js';

test('every corpus fix loads in the VM or is refused with a rule id; none fails', {
  timeout: 60 * 60 * 1000,
}, async (t) => {
  if (!existsSync(CORPUS_DIR)) {
    t.skip(`no corpus at ${CORPUS_DIR} (CI has ../shared beside the checkout)`);
    return;
  }
  const files = corpusFiles(CORPUS_DIR);
  assert.ok(files.length > 0, 'the corpus has patches');
  const target = await ensureKernel(CORPUS_RELEASE);
  const entries = await runCorpus(target, CORPUS_DIR, files, { log: (l) => t.diagnostic(l) });
  const table = formatTable(entries);
  mkdirSync('artifacts', { recursive: true });
  writeFileSync(resolve('artifacts', 'corpus.txt'), `${table}\n`);
  console.log(table);

  assert.equal(entries.length, files.length, 'one verdict per patch');
  const failed = entries.filter((e) => e.verdict.kind === 'failed');
  assert.deepEqual(
    failed.map(
      (e) => `${e.patch}: ${e.verdict.kind === 'failed' ? `${e.verdict.stage}: ${e.verdict.detail}` : ''}`,
    ),
    [],
    'no patch fails with an unexplained error',
  );
  for (const e of entries) {
    if (e.verdict.kind === 'refused') {
      assert.ok(e.verdict.rules.length > 0, `${e.patch} is refused with a rule id`);
      assert.ok(e.verdict.detail.length > 0, `${e.patch} is refused with a reason`);
    }
    if (e.verdict.kind === 'loaded') assert.ok(e.functions.length > 0, `${e.patch} names what it replaced`);
  }
  assert.ok(
    entries.some((e) => e.verdict.kind === 'loaded'),
    'at least one real fix builds and loads',
  );
});

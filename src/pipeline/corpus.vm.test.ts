/*
 * The corpora as CI tests: every real stable fix of ../shared/corpus/stable-6.1.187-to-192/ against
 * 6.1.0-53-cloud-amd64, and of stable-6.12.117-to-118/ against 6.12.117+deb12-cloud-amd64, is built and, when it builds, loaded in the exact kernel under QEMU (transition
 * complete, smoke script, disabled, unloaded). The goal of issue 5: each patch either loads or is
 * refused with a specific rule; none crashes the VM or fails with an unexplained error. The table is
 * kept as artifacts/corpus.txt.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import {
  CORPUS_KERNELS,
  CORPUS_RELEASE,
  CORPUS_ROOT,
  corpusFiles,
  formatTable,
  runCorpus,
} from './corpus.js';

/** One corpus against the kernel it fits: every fix loads or is refused with a rule; the table kept. */
function corpusTest(name: string, release: string, table: string): void {
  const dir = join(CORPUS_ROOT, name);
  test(`${name} on ${release}: every fix loads in the VM or is refused with a rule id; none fails`, {
    timeout: 60 * 60 * 1000,
  }, async (t) => {
    if (!existsSync(dir)) {
      t.skip(`no corpus at ${dir} (CI has ../shared beside the checkout)`);
      return;
    }
    const files = corpusFiles(dir);
    assert.ok(files.length > 0, 'the corpus has patches');
    const target = await ensureKernel(release);
    const entries = await runCorpus(target, dir, files, { log: (l) => t.diagnostic(l) });
    const text = formatTable(entries);
    mkdirSync('artifacts', { recursive: true });
    writeFileSync(resolve('artifacts', table), `${text}\n`);
    console.log(text);
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
}

corpusTest('stable-6.1.187-to-192', CORPUS_RELEASE, 'corpus.txt');
corpusTest(
  'stable-6.12.117-to-118',
  CORPUS_KERNELS['stable-6.12.117-to-118']!,
  'corpus-stable-6.12.117-to-118.txt',
);

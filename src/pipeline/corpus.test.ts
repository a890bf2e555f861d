import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { CORPUS_DIR, CORPUS_ROOT, type CorpusEntry, corpusArgs, formatTable } from './corpus.js';

const entry = (
  patch: string,
  verdict: CorpusEntry['verdict'],
  extra: Partial<CorpusEntry> = {},
): CorpusEntry => ({
  patch,
  name: patch,
  verdict,
  buildMs: 4200,
  modules: [],
  functions: [],
  ...extra,
});

test('the corpus table shows each verdict with its rule or stage, times, and a summary line', () => {
  const table = formatTable([
    entry(
      'fs_pipe.patch',
      { kind: 'loaded', detail: 'ok' },
      { vmMs: 1500, functions: ['pipe.o: changed function: pipe_fasync (reference changed)'] },
    ),
    entry('block_bfq-cgroup.patch', {
      kind: 'refused',
      rules: ['BUILD-MISSING-DEFINITIONS'],
      detail: 'block/bfq-cgroup.c needs definitions this kernel does not have: callback_head',
    }),
    entry('mm_shmem.patch', { kind: 'failed', stage: 'vm', detail: 'kernel oops: BUG at mm/shmem.c' }),
  ]);
  const lines = table.split('\n');
  assert.match(lines[0]!, /^patch\s+result\s+build s\s+vm s\s+detail$/);
  assert.match(
    table,
    /fs_pipe\.patch\s+built and loaded\s+4\.2\s+1\.5\s+pipe\.o: changed function: pipe_fasync$/m,
  );
  assert.match(
    table,
    /block_bfq-cgroup\.patch\s+refused \(BUILD-MISSING-DEFINITIONS\)\s+4\.2\s+-\s+.*callback_head/,
  );
  assert.match(table, /mm_shmem\.patch\s+failed \(vm\)\s+.*kernel oops/);
  assert.equal(lines.at(-1), 'corpus: 3 patches: 1 built and loaded, 1 refused, 1 failed');
});

test('npm run corpus -- --corpus NAME picks the kernel that corpus fits; --kernel overrides it', (t) => {
  if (!existsSync(join(CORPUS_ROOT, 'stable-6.12.117-to-118'))) {
    t.skip('no ../shared/corpus beside the checkout');
    return;
  }
  const d = corpusArgs(['--no-vm', 'meminfo'], {});
  assert.deepEqual(d, {
    dir: CORPUS_DIR,
    release: '6.1.0-53-cloud-amd64',
    noVm: true,
    filters: ['meminfo'],
    table: 'corpus.txt',
  });
  const c = corpusArgs(['--corpus', 'stable-6.12.117-to-118'], { SUTURE_KERNEL: '6.1.0-53-amd64' });
  assert.equal(c.release, '6.12.117+deb12-cloud-amd64');
  assert.equal(c.table, 'corpus-stable-6.12.117-to-118.txt');
  const k = corpusArgs(['--corpus', 'stable-6.12.117-to-118', '--kernel', '6.12.117+deb13-cloud-amd64']);
  assert.equal(k.release, '6.12.117+deb13-cloud-amd64');
  for (const bad of [['--corpus'], ['--kernel', '--no-vm'], ['--corpuss', 'x'], ['--corpus', 'no-such']])
    assert.throws(
      () => corpusArgs(bad, {}),
      (e: unknown) => isSutureError(e) && /^CORPUS-(BAD-ARGS|MISSING)$/.test(e.code),
      bad.join(' '),
    );
});

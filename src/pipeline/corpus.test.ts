import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CorpusEntry, formatTable } from './corpus.js';

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

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAgreement } from './corpus-check.js';

test('the corpus check table marks disagreements and sums both times with their ratio', () => {
  const table = formatAgreement([
    { patch: 'fs_pipe.patch', build: 'built', check: 'built', buildMs: 2000, checkMs: 1000 },
    { patch: 'x.patch', build: 'failed MODULE-BUILD-FAILED', check: 'built', buildMs: 3000, checkMs: 1000 },
  ]);
  assert.match(table, /^fs_pipe\.patch\s+same\s+build\s+2\.0 s\s+check\s+1\.0 s\s+built$/m);
  assert.match(table, /^x\.patch\s+DIFFERENT .* failed MODULE-BUILD-FAILED \/ check: built$/m);
  assert.equal(
    table.split('\n').at(-1),
    'corpus check: 1 of 2 verdicts the same; build 5.0 s, check 2.0 s in all (ratio 0.40)',
  );
});

/*
 * The CLI's side of `--fuzz` and `suture check`: a fuzz beyond 3 (or not a number) is refused before any
 * work, and the check verdict line names the rule to look up, or what would be carried.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import type { Diagnostic } from '../diagnostic.js';
import { fuzzOption } from './commands/build.js';
import { type CheckVerdict, verdictLine } from './commands/check.js';

const BIN = resolve(process.cwd(), 'bin', 'suture.js');

test('--fuzz takes 0 to 3; anything else is CLI-BAD-OPTION, through the CLI too', () => {
  assert.equal(fuzzOption(undefined), undefined);
  assert.equal(fuzzOption('0'), 0);
  assert.equal(fuzzOption('3'), 3);
  for (const bad of ['4', '-1', '1.5', 'two'])
    assert.throws(() => fuzzOption(bad), /CLI-BAD-OPTION|not a fuzz/);
  for (const cmd of ['build', 'check']) {
    const r = spawnSync(process.execPath, [BIN, cmd, 'no-such.patch', '--fuzz', '4'], { encoding: 'utf8' });
    assert.equal(r.status, 1, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, /CLI-BAD-OPTION/);
    assert.match(r.stderr, /--fuzz 4 is not a fuzz/);
  }
});

const refusal: Diagnostic = {
  severity: 'error',
  code: 'KLP-DATA-CHANGED',
  message: 'x',
};
const verdict = (v: Partial<CheckVerdict>): CheckVerdict => ({
  verdict: 'ok',
  kernel: 'k',
  summary: [],
  refusals: [],
  warnings: [],
  timings: {},
  ...v,
});

test('the verdict line names the refusing rules and the explain to run, or the count carried', () => {
  assert.equal(
    verdictLine(
      verdict({ verdict: 'refused', refusals: [refusal, { ...refusal, code: 'KLP-NOTRACE' }] }),
      'x.patch',
    ),
    'x.patch: refused by KLP-DATA-CHANGED, KLP-NOTRACE (suture explain KLP-DATA-CHANGED)',
  );
  assert.equal(
    verdictLine(
      verdict({ summary: ['a.o: changed function: f'], warnings: [{ ...refusal, severity: 'warning' }] }),
      'x.patch',
    ),
    'x.patch: can be livepatched: 1 function to carry, 1 warning',
  );
});

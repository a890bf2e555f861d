/*
 * `suture build` shows the checks' warnings (KLP-INLINE-SPREAD): compiler-style on stderr as the objdiff
 * stage reports them, and under `warnings` in --json.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Diagnostic } from '../diagnostic.js';
import type { BuildResult } from '../pipeline/pipeline.js';
import { progressPrinter, resultJson } from './commands/build.js';

const warning: Diagnostic = {
  severity: 'warning',
  code: 'KLP-INLINE-SPREAD',
  message: 'static function `helper` changed together with 1 other function(s) of the file',
  location: { file: 'fs/proc/meminfo.c', symbol: 'helper' },
  why: 'if the change is in a function inlined into others, each of them is replaced by the patch',
  detail: ['also changed: meminfo_proc_show'],
};

test('a warning progress event is printed as a compiler-style diagnostic', () => {
  let out = '';
  progressPrinter((s) => {
    out += s;
  })({ kind: 'warning', stage: 'objdiff', diagnostic: warning });
  assert.match(out, /^fs\/proc\/meminfo\.c.*: warning\[KLP-INLINE-SPREAD\]: static function `helper`/);
  assert.match(out, /also changed: meminfo_proc_show/);
  assert.match(out, /why: /);
});

test('--json lists the warnings', () => {
  const r: BuildResult = {
    name: 'x',
    release: 'r',
    plan: { units: [], headers: [], ignored: [] },
    units: [],
    timings: [],
    summary: [],
    warnings: [warning],
    workDir: '/tmp/x',
  };
  const j = resultJson(r) as { warnings: Diagnostic[] };
  assert.deepEqual(j.warnings, [warning]);
});

// A run's verdict puts the kernel first: a panic, an oops or BUG, a WARNING outrank whatever the script
// did; then timeouts, a failed boot, the script's failure or status; refused modules are named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KernelProblem, ModuleRefusal } from './problems.js';
import { type RunFacts, verdict } from './run.js';

const ran: RunFacts = {
  booted: true,
  exitCode: 0,
  output: '',
  runMs: 1200,
  kernelLog: '',
  scriptTimedOut: false,
  sessionTimedOut: false,
};
const problem = (kind: KernelProblem['kind'], title: string): KernelProblem => ({
  kind,
  title,
  trace: title,
  offset: 0,
});
const refusal: ModuleRefusal = { module: 'lp', reason: 'disagrees about version of symbol module_layout' };

test('a clean run with status 0 is ok, and a refused module is not mentioned then', () => {
  assert.deepEqual(verdict(ran, [], [refusal]), { outcome: 'ok', message: 'script exited with status 0' });
});

test('the kernel comes first: panic over oops over warning, whatever the script did', () => {
  const all = [
    problem('warning', 'WARNING: w'),
    problem('oops', 'Oops: 0002'),
    problem('panic', 'Kernel panic - x'),
  ];
  assert.deepEqual(verdict(ran, all, []), { outcome: 'panic', message: 'kernel panic: Kernel panic - x' });
  assert.deepEqual(verdict({ ...ran, exitCode: 3 }, all.slice(0, 2), []), {
    outcome: 'oops',
    message: 'kernel oops: Oops: 0002',
  });
  assert.equal(verdict(ran, [problem('bug', 'BUG: b')], []).message, 'kernel bug: BUG: b');
  assert.equal(verdict({ ...ran, sessionTimedOut: true }, all.slice(0, 1), []).outcome, 'warning');
});

test('then time limits, a failed boot, the script failing, its exit status; refusals are named', () => {
  assert.deepEqual(verdict({ ...ran, exitCode: null, scriptTimedOut: true }, [], []), {
    outcome: 'timeout',
    message: 'the script was killed after 1200 ms (time limit)',
  });
  assert.equal(
    verdict({ ...ran, failure: 'the VM did not finish booting in 180 s' }, [], []).outcome,
    'timeout',
  );
  assert.deepEqual(verdict({ ...ran, booted: false, exitCode: null }, [], []), {
    outcome: 'boot-failed',
    message: 'the VM did not boot',
  });
  assert.deepEqual(verdict({ ...ran, failure: 'the VM exited' }, [], []), {
    outcome: 'script-failed',
    message: 'the VM exited',
  });
  assert.deepEqual(verdict({ ...ran, exitCode: 1 }, [], [refusal]), {
    outcome: 'script-failed',
    message:
      'script exited with status 1; the kernel refused lp: disagrees about version of symbol module_layout',
  });
});

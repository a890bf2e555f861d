import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { defaultSchedule, nextDelaySeconds } from './schedule.js';
import { emptyState, loadState, resolveStateDir, saveState, statePath, updateState } from './state.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'suture-agent-state-'));

test('a missing state file is the empty state; saved state reads back identical', () => {
  const dir = tmp();
  assert.deepEqual(loadState(dir), emptyState());
  const s = updateState(dir, (x) => {
    x.failures = 3;
    x.lastCheck = { at: '2026-11-25T12:00:00.000Z', ok: false, error: 'connection refused' };
  });
  assert.deepEqual(loadState(dir), s);
  // atomic replace leaves no temporary file behind
  assert.deepEqual(readdirSync(dir).sort(), ['state.json']);
});

test('a corrupt or foreign state file is an error naming the field, never silently replaced', () => {
  const dir = tmp();
  writeFileSync(statePath(dir), '{"schema":1,');
  assert.throws(
    () => loadState(dir),
    (e) => isSutureError(e) && e.code === 'AGENT-STATE-CORRUPT',
  );
  writeFileSync(statePath(dir), JSON.stringify({ ...emptyState(), failures: -1 }));
  assert.throws(
    () => loadState(dir),
    (e) =>
      isSutureError(e) &&
      e.code === 'AGENT-STATE-CORRUPT' &&
      (e.diagnostic.detail ?? []).some((l) => l.startsWith('failures')),
  );
  assert.equal(readFileSync(statePath(dir), 'utf8').includes('"failures":-1'), true);
});

test("the server's word on the kernel: an older state file without it loads, a bad one is refused", () => {
  const dir = tmp();
  const { kernelSupport: _, ...old } = emptyState();
  writeFileSync(statePath(dir), JSON.stringify({ ...old, failures: 2 }));
  const loaded = loadState(dir);
  assert.equal(loaded.kernelSupport, null);
  assert.equal(loaded.failures, 2);
  const kernel = { release: '6.1.0-53-cloud-amd64', buildId: 'a'.repeat(40) };
  const s = updateState(dir, (x) => {
    x.kernelSupport = { kernel, support: 'upgrade-required', patchedKernels: [kernel] };
  });
  assert.deepEqual(loadState(dir).kernelSupport, s.kernelSupport);
  writeFileSync(
    statePath(dir),
    JSON.stringify({ ...emptyState(), kernelSupport: { kernel, support: 'maybe', patchedKernels: [] } }),
  );
  assert.throws(
    () => loadState(dir),
    (e) =>
      isSutureError(e) &&
      e.code === 'AGENT-STATE-CORRUPT' &&
      (e.diagnostic.detail ?? []).some((l) => l.startsWith('kernelSupport.support')),
  );
});

test('saveState refuses to write a state that does not match the schema', () => {
  const dir = tmp();
  const bad = { ...emptyState(), intervalSeconds: 0 };
  assert.throws(() => saveState(dir, bad));
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('state.json')),
    [],
  );
});

test('state dir: flag, then SUTURE_AGENT_STATE, then /var/lib/suture/agent', () => {
  const old = process.env.SUTURE_AGENT_STATE;
  try {
    process.env.SUTURE_AGENT_STATE = '/tmp/x';
    assert.equal(resolveStateDir('/flag'), '/flag');
    assert.equal(resolveStateDir(), '/tmp/x');
    delete process.env.SUTURE_AGENT_STATE;
    assert.equal(resolveStateDir(), '/var/lib/suture/agent');
  } finally {
    if (old === undefined) delete process.env.SUTURE_AGENT_STATE;
    else process.env.SUTURE_AGENT_STATE = old;
  }
});

test('schedule: jitter stays within ±20% of the interval; failures back off exponentially up to the cap', () => {
  const s = defaultSchedule(60);
  assert.equal(
    nextDelaySeconds(s, 0, () => 0),
    48,
  );
  assert.ok(Math.abs(nextDelaySeconds(s, 0, () => 1) - 72) < 1e-9);
  const mid = (n: number) => nextDelaySeconds(s, n, () => 0.5);
  assert.deepEqual([1, 2, 3, 4, 5].map(mid), [15, 30, 60, 120, 240]);
  assert.equal(mid(10), 600);
  assert.equal(mid(1000), 600);
  const samples = Array.from({ length: 200 }, () => nextDelaySeconds(s, 0));
  assert.ok(samples.every((x) => x >= 48 && x <= 72));
  assert.ok(new Set(samples).size > 100, 'jitter must actually vary the interval');
});

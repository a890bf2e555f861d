/*
 * The intent journal against the kernel's truth: every point where a kill -9 can land between
 * "journal says applying X" and "outcome recorded" must converge to one load, never two.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { reconcile } from './journal.js';
import { loadState, type PatchRecord, updateState } from './state.js';
import { computeStatus, renderStatus } from './status.js';
import { checkedInState } from './testing/checked-in.js';

const kernel = { release: '6.1.0-53-cloud-amd64', buildId: 'a'.repeat(40) };
const patchId = '0123456789abcdef';
const intent = {
  op: 'apply' as const,
  patchId,
  name: 'cmdline',
  moduleName: 'livepatch_cmdline',
  version: '1',
  sha256: 'b'.repeat(64),
  startedAt: new Date().toISOString(),
};
/** The state's record of the cmdline patch, applied once just now (no kernel recorded: as an older agent wrote it). */
const appliedRecord = (): PatchRecord => ({
  patchId,
  name: 'cmdline',
  moduleName: 'livepatch_cmdline',
  version: '1',
  sha256: 'b'.repeat(64),
  outcome: 'applied',
  attempts: 1,
  at: new Date().toISOString(),
});
const tmp = () => mkdtempSync(join(tmpdir(), 'suture-agent-journal-'));

test('killed after the kernel loaded the patch: recorded as applied and reported, not applied again', () => {
  const dir = tmp();
  updateState(dir, (s) => {
    s.intent = intent;
  });
  const r = reconcile(dir, kernel, [{ name: 'livepatch_cmdline', enabled: true, transition: false }]);
  const s = loadState(dir);
  assert.equal(s.intent, null);
  assert.equal(s.patches[patchId]?.outcome, 'applied');
  assert.equal(s.patches[patchId]?.attempts, 1);
  assert.deepEqual(
    s.outbox.map((o) => [o.action, o.status.state, o.status.patchId]),
    [['apply', 'applied', patchId]],
  );
  assert.match(r.notes.join('\n'), /interrupted apply of cmdline: the kernel has livepatch_cmdline loaded/);
});

test('killed before the kernel loaded it: the intent is dropped and nothing is recorded as applied', () => {
  const dir = tmp();
  updateState(dir, (s) => {
    s.intent = intent;
  });
  const r = reconcile(dir, kernel, []);
  const s = loadState(dir);
  assert.equal(s.intent, null);
  assert.equal(s.patches[patchId], undefined);
  assert.deepEqual(s.outbox, []);
  assert.match(r.notes.join('\n'), /never loaded livepatch_cmdline/);
});

test('killed while the kernel is still transitioning: recorded as in transition, then applied once it completes', () => {
  const dir = tmp();
  updateState(dir, (s) => {
    s.intent = intent;
  });
  reconcile(dir, kernel, [{ name: 'livepatch_cmdline', enabled: true, transition: true }]);
  assert.equal(loadState(dir).patches[patchId]?.outcome, 'transition');
  reconcile(dir, kernel, [{ name: 'livepatch_cmdline', enabled: true, transition: false }]);
  const s = loadState(dir);
  assert.equal(s.patches[patchId]?.outcome, 'applied');
  assert.deepEqual(
    s.outbox.map((o) => o.status.state),
    ['transition', 'applied'],
  );
});

test('killed mid-revert: gone from the kernel → reverted; still loaded → intent dropped, record kept', () => {
  const applied = appliedRecord();
  const gone = tmp();
  updateState(gone, (s) => {
    s.patches[patchId] = applied;
    s.intent = { ...intent, op: 'revert' };
  });
  reconcile(gone, kernel, []);
  assert.equal(loadState(gone).patches[patchId]?.outcome, 'reverted');
  assert.equal(loadState(gone).intent, null);

  const still = tmp();
  updateState(still, (s) => {
    s.patches[patchId] = applied;
    s.intent = { ...intent, op: 'revert' };
  });
  reconcile(still, kernel, [{ name: 'livepatch_cmdline', enabled: true, transition: false }]);
  assert.equal(loadState(still).patches[patchId]?.outcome, 'applied');
  assert.equal(loadState(still).intent, null);
});

test('a patch recorded as applied that the kernel no longer has (reboot) becomes reverted and is reported', () => {
  const dir = tmp();
  updateState(dir, (s) => {
    s.patches[patchId] = appliedRecord();
  });
  reconcile(dir, kernel, []);
  const s = loadState(dir);
  assert.equal(s.patches[patchId]?.outcome, 'reverted');
  assert.match(s.patches[patchId]?.reason ?? '', /no longer loaded/);
  assert.equal(s.outbox[0]?.action, 'revert');
});

test('after a boot into another kernel: reverted as kernel-upgrade-required, reported, and status says so', () => {
  const dir = tmp();
  checkedInState(dir, (s) => {
    s.patches[patchId] = { ...appliedRecord(), kernel };
  });
  const booted = { release: '6.1.0-53-amd64', buildId: 'c'.repeat(40) };
  reconcile(dir, booted, []);
  const s = loadState(dir);
  const rec = s.patches[patchId];
  assert.equal(rec?.outcome, 'reverted');
  assert.equal(rec?.code, 'AGENT-KERNEL-UPGRADE-REQUIRED');
  assert.equal(
    rec?.reason,
    'kernel-upgrade-required: built for 6.1.0-53-cloud-amd64 (aaaaaaaaaaaa), this machine booted 6.1.0-53-amd64 (cccccccccccc): not loaded',
  );
  assert.deepEqual(
    s.outbox.map((o) => [o.action, o.status.state, o.status.reason, o.kernel.release]),
    [['revert', 'reverted', rec?.reason, '6.1.0-53-amd64']],
  );
  const running = { ...booted, livepatchSupported: true };
  const st = computeStatus(s, running, []);
  assert.equal(st.patchState.code, 'kernel-upgrade-required');
  assert.equal(
    st.patchState.text,
    'kernel upgrade required: cmdline 1 (6.1.0-53-cloud-amd64) built for another kernel, none offered for 6.1.0-53-amd64',
  );
  // back on the patch's own kernel, or a record without a kernel (older agents): the plain reboot words
  const same = tmp();
  updateState(same, (x) => {
    x.patches[patchId] = { ...(rec as PatchRecord), outcome: 'applied', kernel };
    delete x.patches[patchId]?.code;
  });
  reconcile(same, kernel, []);
  assert.match(loadState(same).patches[patchId]?.reason ?? '', /^no longer loaded/);
  assert.equal(loadState(same).patches[patchId]?.code, undefined);
  // booted back into the patch's kernel, the boot unit loaded it again: applied, reported, not refused
  reconcile(dir, kernel, [{ name: 'livepatch_cmdline', enabled: true, transition: false }]);
  const back = loadState(dir);
  assert.equal(back.patches[patchId]?.outcome, 'applied');
  assert.equal(back.patches[patchId]?.code, undefined);
  assert.deepEqual(back.outbox.map((o) => [o.action, o.status.state, o.kernel.release]).at(-1), [
    'apply',
    'applied',
    kernel.release,
  ]);
  reconcile(dir, booted, []); // and away again
  assert.equal(loadState(dir).patches[patchId]?.code, 'AGENT-KERNEL-UPGRADE-REQUIRED');
  // once the server offers a patch for the booted kernel, the offer is what status speaks of
  updateState(dir, (x) => {
    x.offered = [{ patchId: 'fedcba9876543210', name: 'cmdline', version: '2', replace: true }];
  });
  assert.equal(computeStatus(loadState(dir), running, []).patchState.code, 'pending');
});

test('status: the words of canonical-livepatch status, from state and the kernel', () => {
  const dir = tmp();
  const running = { ...kernel, livepatchSupported: true };
  assert.equal(computeStatus(loadState(dir), running, []).patchState.code, 'not-enrolled');
  const s = updateState(dir, (x) => {
    x.enrollment = {
      server: 'http://127.0.0.1:1',
      machineId: 'm-0000000000000001',
      credential: 'c'.repeat(40),
      serverPublicKey: 'k',
      tier: 'canary',
      enrolledAt: new Date().toISOString(),
    };
    x.lastCheck = { at: new Date(Date.now() - 120_000).toISOString(), ok: true };
    x.lastSuccessAt = x.lastCheck.at;
  });
  assert.equal(computeStatus(s, running, []).patchState.text, 'nothing to apply');
  assert.equal(
    computeStatus(s, { ...running, livepatchSupported: false }, []).patchState.text,
    'kernel not supported',
  );
  s.offered = [{ patchId, name: 'cmdline', version: '1', replace: false }];
  assert.equal(computeStatus(s, running, []).patchState.text, 'pending: cmdline');
  s.patches[patchId] = appliedRecord();
  const ok = computeStatus(s, running, [{ name: 'livepatch_cmdline', enabled: true, transition: false }]);
  assert.equal(ok.patchState.text, '✓ all applicable livepatch modules inserted');
  assert.equal(ok.patchVersion, 'cmdline 1');
  const text = renderStatus(ok);
  assert.match(text, /^last check: 2 minutes ago$/m);
  assert.match(text, /^kernel: 6\.1\.0-53-cloud-amd64$/m);
  assert.match(text, /^server check-in: succeeded$/m);
  assert.match(text, /^patch version: cmdline 1$/m);
  // the kernel's truth wins: recorded as applied but not loaded → not "all inserted"
  assert.equal(computeStatus(s, running, []).patchState.code, 'pending');
  s.patches[patchId] = {
    ...(s.patches[patchId] as PatchRecord),
    outcome: 'refused',
    reason: 'SIGNATURE-INVALID: bad',
  };
  assert.equal(
    computeStatus(s, running, []).patchState.text,
    'apply failed: cmdline: SIGNATURE-INVALID: bad',
  );
  s.lastCheck = {
    at: new Date().toISOString(),
    ok: false,
    error: 'cannot reach http://127.0.0.1:1: connection refused',
  };
  assert.match(
    renderStatus(computeStatus(s, running, [])),
    /^server check-in: failed: cannot reach .*connection refused$/m,
  );
});

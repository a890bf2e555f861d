/*
 * A patch left behind by a kernel change, worded by what the server last said of the booted kernel
 * (kernel-change.ts): the record's code and reason, the report sent again when the server's word
 * changes, and `suture agent status` for each word — unsupported, upgrade-required (naming the kernels
 * the server patches), patched but not offered, and a word about another kernel (ignored).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { KernelSupport } from '../manifest/protocol.js';
import { checkInOnce } from './checkin.js';
import { reconcile } from './journal.js';
import { rewordKernelChange } from './kernel-change.js';
import { type AgentState, loadState, type PatchRecord, updateState } from './state.js';
import { computeStatus } from './status.js';
import { type Cleanups, publishable, rig } from './testing/agent-rig.js';
import { checkedInState } from './testing/checked-in.js';

const cleanups: Cleanups = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const built = { release: '6.1.0-53-cloud-amd64', buildId: 'a'.repeat(40) };
const booted = { release: '6.1.0-53-amd64', buildId: 'c'.repeat(40) };
const running = { ...booted, livepatchSupported: true };
const newer = { release: '6.1.0-54-amd64', buildId: 'd'.repeat(40) };
const patchId = '0123456789abcdef';
const tmp = () => mkdtempSync(join(tmpdir(), 'suture-agent-kernel-change-'));

/** An enrolled agent that checked in, with the cmdline patch applied on `built` (when `withPatch`). */
function enrolled(withPatch = true): string {
  const dir = tmp();
  checkedInState(dir, (s) => {
    if (withPatch) {
      const rec: PatchRecord = {
        patchId,
        name: 'cmdline',
        moduleName: 'livepatch_cmdline',
        version: '1',
        sha256: 'b'.repeat(64),
        outcome: 'applied',
        attempts: 1,
        kernel: built,
        at: new Date().toISOString(),
      };
      s.patches[patchId] = rec;
    }
  });
  return dir;
}

const said =
  (support: KernelSupport, kernel = booted, patchedKernels = [newer]) =>
  (s: AgentState) => {
    s.kernelSupport = {
      kernel,
      support,
      patchedKernels: support === 'upgrade-required' ? patchedKernels : [],
    };
  };

test('unsupported: the record, its report and status say so; re-worded when the server changes its word', () => {
  const dir = enrolled();
  updateState(dir, said('unsupported'));
  reconcile(dir, booted, []);
  let s = loadState(dir);
  const why =
    'kernel-unsupported: built for 6.1.0-53-cloud-amd64 (aaaaaaaaaaaa), this machine booted 6.1.0-53-amd64 (cccccccccccc): not loaded, the server has no patch for this kernel nor its flavour';
  assert.equal(s.patches[patchId]?.outcome, 'reverted');
  assert.equal(s.patches[patchId]?.code, 'AGENT-KERNEL-UNSUPPORTED');
  assert.equal(s.patches[patchId]?.reason, why);
  assert.deepEqual(
    s.outbox.map((o) => [o.action, o.status.state, o.status.reason]),
    [['revert', 'reverted', why]],
  );
  assert.deepEqual(computeStatus(s, running, []).patchState, {
    code: 'unsupported',
    text: 'unsupported: the server has no patch for 6.1.0-53-amd64 nor any kernel of its flavour; cmdline 1 (6.1.0-53-cloud-amd64) built for another kernel, not loaded',
  });

  // the server now has a patch for another kernel of this flavour
  const notes: string[] = [];
  s = updateState(dir, (x) => {
    said('upgrade-required')(x);
    notes.push(...rewordKernelChange(x, booted));
  });
  assert.equal(s.patches[patchId]?.code, 'AGENT-KERNEL-UPGRADE-REQUIRED');
  assert.match(
    s.patches[patchId]?.reason ?? '',
    /^kernel-upgrade-required: built for 6\.1\.0-53-cloud-amd64/,
  );
  assert.equal(notes.length, 1);
  assert.deepEqual(
    s.outbox.map((o) => o.status.reason),
    [why, s.patches[patchId]?.reason],
    'reported again with the new words',
  );
  assert.deepEqual(computeStatus(s, running, []).patchState, {
    code: 'kernel-upgrade-required',
    text: 'kernel upgrade required: cmdline 1 (6.1.0-53-cloud-amd64) built for another kernel, none offered for 6.1.0-53-amd64; the server has patches for 6.1.0-54-amd64',
  });
  s = updateState(dir, (x) => {
    assert.deepEqual(rewordKernelChange(x, booted), [], 'the same word again changes nothing');
  });
  assert.equal(s.outbox.length, 2);

  // back to unsupported (the patch revoked), and then a server that says nothing (older): the default
  s = updateState(dir, (x) => {
    said('unsupported')(x);
    rewordKernelChange(x, booted);
  });
  assert.equal(s.patches[patchId]?.code, 'AGENT-KERNEL-UNSUPPORTED');
  s = updateState(dir, (x) => {
    x.kernelSupport = null;
    rewordKernelChange(x, booted);
  });
  assert.equal(s.patches[patchId]?.code, 'AGENT-KERNEL-UPGRADE-REQUIRED');
  assert.equal(computeStatus(s, running, []).patchState.code, 'kernel-upgrade-required');
  assert.equal(s.outbox.length, 4);
});

test('a word about another kernel (the one before the reboot) is not taken for the booted one', () => {
  const dir = enrolled();
  updateState(dir, said('unsupported', built));
  reconcile(dir, booted, []);
  const s = loadState(dir);
  assert.equal(s.patches[patchId]?.code, 'AGENT-KERNEL-UPGRADE-REQUIRED');
  assert.deepEqual(computeStatus(s, running, []).patchState, {
    code: 'kernel-upgrade-required',
    text: 'kernel upgrade required: cmdline 1 (6.1.0-53-cloud-amd64) built for another kernel, none offered for 6.1.0-53-amd64',
  });
});

test('status without a patch left behind: the server word alone', () => {
  const dir = enrolled(false);
  const status = (change: (s: AgentState) => void) =>
    computeStatus(updateState(dir, change), running, []).patchState;
  assert.deepEqual(status(said('unsupported')), {
    code: 'unsupported',
    text: 'unsupported: the server has no patch for 6.1.0-53-amd64 nor any kernel of its flavour',
  });
  assert.deepEqual(status(said('upgrade-required', booted, [newer, built])), {
    code: 'kernel-upgrade-required',
    text: 'kernel upgrade required: none offered for 6.1.0-53-amd64; the server has patches for 6.1.0-54-amd64, 6.1.0-53-cloud-amd64',
  });
  assert.deepEqual(status(said('patched')), {
    code: 'nothing-to-apply',
    text: 'nothing to apply: the server has patches for 6.1.0-53-amd64, none offered to this machine (tier stable)',
  });
  assert.deepEqual(
    status((s) => {
      s.kernelSupport = null;
    }),
    { code: 'nothing-to-apply', text: 'nothing to apply' },
    'an older server: as before',
  );
  // an offer wins over any word on the kernel
  const offered = status((s) => {
    said('unsupported')(s);
    s.offered = [{ patchId, name: 'cmdline', version: '1', replace: true }];
  });
  assert.equal(offered.code, 'pending');
});

test('through the real server: unsupported, then upgrade-required naming the kernel, then patched', async () => {
  const r = await rig(cleanups);
  const kernel = { release: r.k.release, buildId: r.k.buildId };
  const status = async () => {
    assert.equal((await checkInOnce(r.ctx)).ok, true, r.log.join('\n'));
    const s = loadState(r.ctx.stateDir);
    return computeStatus(s, await r.ctx.kernel.runningKernel(), await r.ctx.kernel.listLivepatches());
  };
  assert.deepEqual((await status()).patchState, {
    code: 'unsupported',
    text: `unsupported: the server has no patch for ${kernel.release} nor any kernel of its flavour`,
  });
  const rebuilt = { release: kernel.release, buildId: 'e'.repeat(40) };
  const other = publishable(r, 'livepatch_cmdline', { kernel: rebuilt });
  await r.backend.publish(other.file, other.manifest, 'canary');
  assert.deepEqual((await status()).patchState, {
    code: 'kernel-upgrade-required',
    text: `kernel upgrade required: none offered for ${kernel.release}; the server has patches for ${kernel.release}`,
  });
  assert.deepEqual(loadState(r.ctx.stateDir).kernelSupport?.patchedKernels, [rebuilt]);
  const mine = publishable(r, 'livepatch_meminfo');
  const id = await r.backend.publish(mine.file, mine.manifest, 'stable');
  assert.deepEqual((await status()).patchState, {
    code: 'nothing-to-apply',
    text: `nothing to apply: the server has patches for ${kernel.release}, none offered to this machine (tier canary)`,
  });
  await r.backend.promote(id, 'canary');
  assert.equal((await status()).patchState.code, 'applied');
  assert.deepEqual(r.hostApplies, ['meminfo']);
});

/*
 * The agent against a server, on the host layer's fake kernel (src/host/fake-kernel.ts: sysfs, procfs
 * and an insmod that behaves like 6.1's livepatch core): offer → verify → apply → report, revoke →
 * revert, refusals of tampered modules, tampered manifests and patches for another build id (nothing
 * reaches init_module), the server going down (back-off, status says why, patches stay), and a
 * stalled transition reported with its blocking task.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { checkInOnce, MAX_ATTEMPTS } from './checkin.js';
import { runDaemon } from './daemon.js';
import { loadState } from './state.js';
import { computeStatus, renderStatus } from './status.js';
import { type Cleanups, manifestFor, publishable, rig } from './testing/agent-rig.js';

const cleanups: Cleanups = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('agent against a server', () => {
  test('offer → verify → apply → report; status says all inserted; revoke → revert', async () => {
    const r = await rig(cleanups);
    const st0 = await checkInOnce(r.ctx);
    assert.equal(st0.ok, true);
    // an empty server has no patch for this kernel nor its flavour (issue #13: `unsupported`)
    assert.deepEqual(computeStatus(loadState(r.ctx.stateDir), null, []).patchState, {
      code: 'unsupported',
      text: `unsupported: the server has no patch for ${r.k.release} nor any kernel of its flavour`,
    });

    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.applied, ['cmdline'], r.log.join('\n'));
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), [
      { name: 'livepatch_cmdline', enabled: true, transition: false },
    ]);
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id]?.outcome, 'applied');
    assert.deepEqual(s.outbox, [], 'the report was delivered');
    assert.equal(await r.backend.machineState(s.enrollment?.machineId as string, id), 'applied');
    const status = computeStatus(s, await r.ctx.kernel.runningKernel(), await r.ctx.kernel.listLivepatches());
    assert.equal(status.patchState.text, '✓ all applicable livepatch modules inserted');
    assert.equal(status.patchVersion, 'cmdline 1');
    assert.match(renderStatus(status), /^server check-in: succeeded$/m);

    // a second check-in changes nothing: applied once
    await checkInOnce(r.ctx);
    assert.equal(r.insmods().length, 1);

    await r.backend.revoke(id);
    const rv = await checkInOnce(r.ctx);
    assert.deepEqual(rv.ok && rv.reverted, ['cmdline'], r.log.join('\n'));
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), []);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'reverted');
    assert.equal(await r.backend.machineState(s.enrollment?.machineId as string, id), 'reverted');
  });

  test('a cumulative patch replaces the earlier one; older offers are covered by it', async () => {
    const r = await rig(cleanups);
    const a = publishable(r, 'livepatch_cmdline');
    const idA = await r.backend.publish(a.file, a.manifest, 'canary');
    await checkInOnce(r.ctx);
    assert.equal(loadState(r.ctx.stateDir).patches[idA]?.outcome, 'applied');
    r.k.specs.set('livepatch_cumulative', { objects: { vmlinux: ['cmdline_proc_show'] }, replace: true });
    const fileB = r.k.writeModule('livepatch_cumulative');
    const idB = await r.backend.publish(
      fileB,
      manifestFor(r.k, fileB, 'livepatch_cumulative', { version: '2', replace: true }),
      'canary',
    );
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.applied, ['cumulative'], r.log.join('\n'));
    const s = loadState(r.ctx.stateDir);
    assert.deepEqual(
      s.offered.map((o) => o.patchId),
      [idB, idA],
      'newest first',
    );
    assert.equal(s.patches[idB]?.outcome, 'applied');
    assert.equal(s.patches[idA]?.outcome, 'reverted');
    assert.match(s.patches[idA]?.reason ?? '', /replaced by a cumulative patch/);
    const live = (await r.ctx.kernel.listLivepatches()).filter((l) => l.enabled).map((l) => l.name);
    assert.deepEqual(live, ['livepatch_cumulative']);
    const status = computeStatus(s, await r.ctx.kernel.runningKernel(), await r.ctx.kernel.listLivepatches());
    assert.equal(status.patchState.text, '✓ all applicable livepatch modules inserted');
    assert.equal(status.patchVersion, 'cumulative 2');
    // the covered older patch is not loaded again at the next check-in
    await checkInOnce(r.ctx);
    assert.deepEqual(r.insmods().length, 2);
  });

  test('a module changed after signing is refused, reported, and never loaded', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    r.proxy.hooks.rewriteModule = (b) => {
      const c = Buffer.from(b);
      c[c.length - 1] = (c[c.length - 1] as number) ^ 0xff;
      return c;
    };
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.refused, ['cmdline']);
    assert.deepEqual(r.insmods(), [], 'nothing reached init_module');
    assert.deepEqual(r.hostApplies, [], 'the host layer was never asked');
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.patches[id]?.code, 'AGENT-MODULE-HASH-MISMATCH');
    assert.equal(await r.backend.machineState(s.enrollment?.machineId as string, id), 'failed');
    assert.match(
      computeStatus(s, null, []).patchState.text,
      /^apply failed: cmdline: AGENT-MODULE-HASH-MISMATCH/,
    );
    // damaged bytes may be a transit problem: fetched again, but only MAX_ATTEMPTS times in all
    for (let i = 0; i < MAX_ATTEMPTS + 1; i++) await checkInOnce(r.ctx);
    assert.deepEqual(r.insmods(), []);
    assert.deepEqual(r.hostApplies, []);
    assert.equal(r.proxy.seen.filter((p) => p.endsWith('/module')).length, MAX_ATTEMPTS);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.attempts, MAX_ATTEMPTS);
  });

  test('a manifest changed after signing is refused before anything is downloaded', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    // a server holding the key signs the answer, yet the manifest was changed after its signature
    r.proxy.hooks.resignWith = r.backend.signingKey();
    r.proxy.hooks.rewriteCheckin = (c) => ({
      ...c,
      offered: c.offered.map((o) => ({ ...o, manifest: { ...o.manifest, cves: [] } })),
    });
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.refused, ['cmdline']);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.code, 'SIGNATURE-INVALID');
    assert.deepEqual(r.hostApplies, []);
    assert.deepEqual(r.insmods(), []);
    assert.equal(r.proxy.seen.filter((p) => p.endsWith('/module')).length, 0, 'not even downloaded');
    // the signed content will not change: refused once, not retried at every check-in
    await checkInOnce(r.ctx);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.attempts, 0);
    assert.deepEqual(r.hostApplies, []);
  });

  test('a correctly signed patch for another build id, forced through, is refused before the host layer', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline', {});
    const foreign = { ...manifest, kernel: { release: r.k.release, buildId: 'f'.repeat(40) } };
    const id = await r.backend.publish(file, foreign, 'canary');
    const offer = await r.backend.offerFor(id, 'canary', foreign.kernel);
    // the server does not offer it to this kernel …
    const res0 = await checkInOnce(r.ctx);
    assert.deepEqual(res0.ok && res0.refused, []);
    assert.equal(loadState(r.ctx.stateDir).offered.length, 0);
    // … so a lying server (holding the key, so the answer itself verifies) forces it in
    r.proxy.hooks.resignWith = r.backend.signingKey();
    r.proxy.hooks.rewriteCheckin = (c) => ({ ...c, offered: [offer] });
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.refused, ['cmdline']);
    const rec = loadState(r.ctx.stateDir).patches[id];
    assert.equal(rec?.code, 'AGENT-WRONG-KERNEL');
    assert.match(rec?.reason ?? '', /built for .* \(build id f{40}\), this machine runs/);
    assert.deepEqual(r.hostApplies, [], 'refused before the host layer was called');
    assert.deepEqual(r.insmods(), []);
    assert.equal(r.proxy.seen.filter((p) => p.endsWith('/module')).length, 0);
  });

  test('server down: back-off, status says the check-in failed and why, applied patches stay', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    await r.backend.publish(file, manifest, 'canary');
    await checkInOnce(r.ctx);
    assert.equal((await r.ctx.kernel.listLivepatches()).length, 1);
    await r.proxy.down();
    const ac = new AbortController();
    const waits: string[] = [];
    await runDaemon({
      ...r.ctx,
      log: (l) => waits.push(l),
      intervalSeconds: 0.05,
      backoffCapSeconds: 0.2,
      maxCheckins: 3,
      signal: ac.signal,
    });
    const s = loadState(r.ctx.stateDir);
    assert.equal(s.failures, 3);
    assert.equal(s.lastCheck?.ok, false);
    assert.match(s.lastCheck?.error ?? '', /connection refused/);
    const backoffs = waits.filter((l) => l.startsWith('server unreachable'));
    assert.equal(backoffs.length, 2, waits.join('\n'));
    const status = computeStatus(s, await r.ctx.kernel.runningKernel(), await r.ctx.kernel.listLivepatches());
    assert.match(
      renderStatus(status),
      /^server check-in: failed: cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
    assert.equal(
      status.patchState.text,
      '✓ all applicable livepatch modules inserted',
      'patches kept while the server is down',
    );
    assert.equal((await r.ctx.kernel.listLivepatches()).length, 1);
    await r.proxy.up();
    const back = await checkInOnce(r.ctx);
    assert.equal(back.ok, true);
    assert.equal(loadState(r.ctx.stateDir).failures, 0);
    assert.equal(r.insmods().length, 1, 'never applied twice');
  });

  test('a stalled transition is reported with its blocking task; the machine is left as it was', async () => {
    const r = await rig(cleanups);
    r.k.addTask({
      pid: 77,
      comm: 'stall_sleeper',
      kthread: true,
      holds: ['cmdline_proc_show'],
      stack: ['[<0>] msleep_interruptible+0x29/0x50', '[<0>] cmdline_proc_show+0x15/0x30'],
    });
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    r.ctx.applyTimeoutMs = 500;
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.failed, ['cmdline'], r.log.join('\n'));
    const rec = loadState(r.ctx.stateDir).patches[id];
    assert.equal(rec?.outcome, 'stalled');
    assert.deepEqual(
      rec?.transition?.blockingTasks.map((t) => t.comm),
      ['stall_sleeper'],
    );
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), []);
    const reported = await r.backend.machineReport(
      loadState(r.ctx.stateDir).enrollment?.machineId as string,
      id,
    );
    assert.equal(reported?.state, 'failed');
    assert.equal(reported?.transition?.stalled, true);
    assert.deepEqual(
      reported?.transition?.blockingTasks.map((t) => t.comm),
      ['stall_sleeper'],
    );
    assert.match(
      renderStatus(computeStatus(loadState(r.ctx.stateDir), null, [])),
      /stall_sleeper \(pid 77\)/,
    );
  });
});

/*
 * The check-in answer under attack (issue #12, defect 2), through the tampering proxy: a replayed
 * answer, a downgrade to a revoked v1 by relabelling, a hidden revocation, a forged revoke of a
 * livepatch applied by hand, a 0-byte module, a forged word on the kernel (`kernelSupport`), and key
 * rotation. Each attack is tried as a man in the middle without the key (the answer's signature
 * fails) and, where it matters, as a server holding the key (the checks behind the signature hold). Every refusal happens before the kernel: nothing is
 * loaded or unloaded. On the host layer's fake kernel, with the real server.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { applyLivepatch } from '../host/index.js';
import { announceKey } from '../manifest/key-rotation.js';
import { generateSigningKey, publicKeyToBase64, signManifest } from '../manifest/signature.js';
import { MAX_ANSWER_AGE_SECONDS } from './answer.js';
import { checkInOnce } from './checkin.js';
import { ServerClient } from './server-client.js';
import { loadState } from './state.js';
import {
  type Cleanups,
  manifestFor,
  publishable,
  publishableVersion,
  type Rig,
  rig,
} from './testing/agent-rig.js';

const cleanups: Cleanups = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What the kernel saw: every insmod and rmmod. */
const kernelOps = (r: Rig) => r.k.calls.filter((c) => c.startsWith('insmod') || c.startsWith('rmmod'));

async function refusedAs(r: Rig, code: string): Promise<void> {
  const ops = kernelOps(r).length;
  const res = await checkInOnce(r.ctx);
  assert.equal(res.ok, false, r.log.join('\n'));
  assert.equal(!res.ok && res.code, code, r.log.join('\n'));
  assert.equal(kernelOps(r).length, ops, 'nothing loaded or unloaded');
  assert.equal(loadState(r.ctx.stateDir).lastCheck?.ok, false);
}

describe('signed check-in answers', () => {
  test('a replayed answer is refused: the revoked patch it offered is not loaded again', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    await checkInOnce(r.ctx);
    const offering = r.proxy.answers.at(-1);
    assert.equal(offering?.offered[0]?.patchId, id);
    await r.backend.revoke(id);
    await checkInOnce(r.ctx);
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), []);
    assert.deepEqual(readdirSync(join(r.ctx.stateDir, 'modules')), [], 'the revoked module left the cache');
    r.proxy.hooks.rewriteCheckin = () => structuredClone(offering as NonNullable<typeof offering>);
    await refusedAs(r, 'AGENT-ANSWER-REPLAYED');
    assert.deepEqual(await r.ctx.kernel.listLivepatches(), []);
    delete r.proxy.hooks.rewriteCheckin;
    assert.equal((await checkInOnce(r.ctx)).ok, true, 'the next real answer is accepted');
  });

  test("another machine's answer, and an answer held back too long, are refused", async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    await r.backend.publish(file, manifest, 'canary');
    const kernel = await r.ctx.kernel.runningKernel();
    const other = await new ServerClient(r.backend.url).enroll({
      token: await r.backend.createToken('canary'),
      hostname: 'other',
      kernel: { release: kernel.release, buildId: kernel.buildId },
      agentVersion: '0.1.0',
    });
    const theirs = await new ServerClient(r.backend.url, other.credential).checkin({
      kernel: { release: kernel.release, buildId: kernel.buildId },
      hostname: 'other',
      agentVersion: '0.1.0',
      patches: [],
    });
    // signed by the server, sequence far ahead: still not for this machine
    r.proxy.hooks.rewriteCheckin = () => ({ ...theirs.answer, sequence: 1000 });
    r.proxy.hooks.resignWith = r.backend.signingKey();
    await refusedAs(r, 'AGENT-ANSWER-MACHINE');
    const held = new Date(Date.now() - (MAX_ANSWER_AGE_SECONDS + 3600) * 1000).toISOString();
    r.proxy.hooks.rewriteCheckin = (c) => ({ ...c, issuedAt: held });
    await refusedAs(r, 'AGENT-ANSWER-STALE');
    assert.deepEqual(r.hostApplies, []);
    r.proxy.hooks = {};
    assert.deepEqual((await checkInOnce(r.ctx)).ok && r.hostApplies, ['cmdline']);
  });

  test('a hidden revocation is refused as a whole; the real answer then reverts', async () => {
    const r = await rig(cleanups);
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    await checkInOnce(r.ctx);
    await r.backend.revoke(id);
    r.proxy.hooks.rewriteCheckin = (c) => ({ ...c, revoked: [] });
    await refusedAs(r, 'AGENT-ANSWER-SIGNATURE');
    assert.equal((await r.ctx.kernel.listLivepatches()).length, 1);
    delete r.proxy.hooks.rewriteCheckin;
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.reverted, ['cmdline']);
  });

  test("a forged word on the kernel is refused; an older server's answer without one is taken as before", async () => {
    const r = await rig(cleanups);
    await checkInOnce(r.ctx);
    const kernel = { release: r.k.release, buildId: r.k.buildId };
    assert.equal(r.proxy.answers.at(-1)?.kernelSupport, 'unsupported', 'no patch at all on the server');
    const { file, manifest } = publishable(r, 'livepatch_cmdline', {
      kernel: { release: r.k.release, buildId: 'e'.repeat(40) },
    });
    await r.backend.publish(file, manifest, 'canary');
    await checkInOnce(r.ctx);
    const real = loadState(r.ctx.stateDir).kernelSupport;
    assert.equal(real?.support, 'upgrade-required');
    // the man in the middle says there is nothing for this kernel, hiding the upgrade path
    r.proxy.hooks.rewriteCheckin = (c) => {
      const { patchedKernels: _, ...rest } = c;
      return { ...rest, kernelSupport: 'unsupported' };
    };
    await refusedAs(r, 'AGENT-ANSWER-SIGNATURE');
    assert.deepEqual(loadState(r.ctx.stateDir).kernelSupport, real, 'the last accepted word stays');
    // an older server (signed, no such field): accepted, the agent keeps no word on the kernel
    r.proxy.hooks.rewriteCheckin = (c) => {
      const { kernelSupport: _, patchedKernels: __, ...rest } = c;
      return rest;
    };
    r.proxy.hooks.resignWith = r.backend.signingKey();
    assert.equal((await checkInOnce(r.ctx)).ok, true, r.log.join('\n'));
    assert.equal(loadState(r.ctx.stateDir).kernelSupport, null);
    r.proxy.hooks = {};
    await checkInOnce(r.ctx);
    assert.deepEqual(loadState(r.ctx.stateDir).kernelSupport, {
      kernel,
      support: 'upgrade-required',
      patchedKernels: [{ release: r.k.release, buildId: 'e'.repeat(40) }],
    });
  });

  test('a downgrade to a revoked v1 by relabelling is refused, with the key or without', async () => {
    const r = await rig(cleanups);
    const v1 = publishableVersion(r, 'livepatch_cmdline', '1');
    const id1 = await r.backend.publish(v1.file, v1.manifest, 'canary');
    await checkInOnce(r.ctx);
    const v1Offer = r.proxy.answers.at(-1)?.offered.find((o) => o.patchId === id1);
    assert.ok(v1Offer);
    const v2 = publishableVersion(r, 'livepatch_cmdline', '2');
    const id2 = await r.backend.publish(v2.file, v2.manifest, 'canary');
    await r.backend.revoke(id1);
    await checkInOnce(r.ctx);
    assert.equal(loadState(r.ctx.stateDir).patches[id2]?.outcome, 'applied');
    // v1 relabelled as v2's offer, revoke list emptied
    r.proxy.hooks.rewriteCheckin = (c) => ({
      ...c,
      revoked: [],
      offered: c.offered.map((o) => (o.patchId === id2 ? { ...v1Offer, patchId: id2 } : o)),
    });
    await refusedAs(r, 'AGENT-ANSWER-SIGNATURE');
    // a server holding the key signs it, v1 under v2's id or under a new id: v1 never replaces v2
    r.proxy.hooks.resignWith = r.backend.signingKey();
    const before = kernelOps(r).length;
    assert.equal((await checkInOnce(r.ctx)).ok, true);
    r.proxy.hooks.rewriteCheckin = (c) => ({
      ...c,
      revoked: [],
      offered: [{ ...v1Offer, patchId: 'e'.repeat(16) }],
    });
    assert.equal((await checkInOnce(r.ctx)).ok, true);
    assert.equal(kernelOps(r).length, before, 'nothing loaded or unloaded');
    assert.match(
      r.log.join('\n'),
      /not installing cmdline 1: version 2 of it was applied here \(no downgrade\)/,
    );
    assert.equal(loadState(r.ctx.stateDir).patches['e'.repeat(16)], undefined);
    assert.equal(loadState(r.ctx.stateDir).patches[id2]?.outcome, 'applied');
  });

  test('a forged revoke of a livepatch applied by hand unloads nothing', async () => {
    const r = await rig(cleanups);
    const hand = publishableVersion(r, 'livepatch_hand', '1');
    await applyLivepatch({ module: hand.file, roots: r.k.roots, timeoutMs: 2000 });
    const mine = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(mine.file, mine.manifest, 'canary');
    await checkInOnce(r.ctx);
    const forged = [
      { patchId: 'f'.repeat(16), name: 'hand', moduleName: 'livepatch_hand' },
      // our own patch id, but naming the hand-applied module: the agent's record says which module
      { patchId: id, name: 'cmdline', moduleName: 'livepatch_hand' },
    ];
    r.proxy.hooks.rewriteCheckin = (c) => ({ ...c, revoked: forged, offered: [] });
    await refusedAs(r, 'AGENT-ANSWER-SIGNATURE');
    r.proxy.hooks.resignWith = r.backend.signingKey();
    await checkInOnce(r.ctx);
    assert.ok(!r.k.calls.includes('rmmod livepatch_hand'), 'the hand-applied livepatch stays');
    const live = (await r.ctx.kernel.listLivepatches()).map((l) => l.name);
    assert.deepEqual(live, ['livepatch_hand'], 'only the patch this agent applied under that id left');
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'reverted');
  });

  test('a signed offer of a 0-byte module is refused for that patch alone, before any download', async () => {
    const r = await rig(cleanups);
    const good = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(good.file, good.manifest, 'canary');
    const key = r.backend.signingKey();
    const empty = {
      ...manifestFor(r.k, good.file, 'livepatch_empty'),
      module: {
        file: 'livepatch-empty.ko',
        name: 'livepatch_empty',
        sha256: createHash('sha256').update(Buffer.alloc(0)).digest('hex'),
      },
    };
    r.proxy.hooks.resignWith = key;
    r.proxy.hooks.rewriteCheckin = (c) => ({
      ...c,
      offered: [
        {
          patchId: '0'.repeat(16),
          manifest: empty,
          signature: signManifest(empty, key),
          sha256: empty.module.sha256,
          size: 0,
          url: '/v1/patches/0000000000000000/module',
          publishedAt: new Date().toISOString(),
        },
        ...c.offered,
      ],
    });
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.refused, ['empty'], r.log.join('\n'));
    assert.deepEqual(res.ok && res.applied, ['cmdline'], 'the other offers are not held up');
    assert.equal(loadState(r.ctx.stateDir).patches['0'.repeat(16)]?.code, 'AGENT-MODULE-EMPTY');
    assert.equal(r.proxy.seen.filter((p) => p.includes('0000000000000000')).length, 0, 'not downloaded');
    assert.deepEqual(r.hostApplies, ['cmdline']);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'applied');
  });

  test('key rotation: the agent trusts a new key only through its announcement by the old one', async () => {
    const r = await rig(cleanups);
    const pinned = loadState(r.ctx.stateDir).enrollment?.serverPublicKey;
    // an impostor key announced by itself, and an answer signed with it: refused
    const impostor = generateSigningKey();
    const selfAnnounced = announceKey(impostor.publicKey, impostor, new Date().toISOString());
    r.proxy.hooks.resignWith = impostor.privateKey;
    r.proxy.hooks.rewriteCheckin = (c) => ({ ...c, keys: [selfAnnounced] });
    await refusedAs(r, 'AGENT-ANSWER-SIGNATURE');
    // claiming to come from the trusted key without its signature: refused
    r.proxy.hooks.rewriteCheckin = (c) => ({
      ...c,
      keys: [{ ...selfAnnounced, previous: pinned as string }],
    });
    await refusedAs(r, 'KEY-ANNOUNCEMENT-INVALID');
    assert.equal(loadState(r.ctx.stateDir).enrollment?.serverPublicKey, pinned);
    r.proxy.hooks = {};

    const rotated = await r.backend.admin<{ previous: string; publicKey: string }>(
      'POST',
      '/admin/v1/key/rotate',
      {},
    );
    assert.equal(rotated.previous, pinned);
    assert.equal(rotated.publicKey, publicKeyToBase64(createPublicKey(r.backend.signingKey())));
    const { file, manifest } = publishable(r, 'livepatch_cmdline');
    const id = await r.backend.publish(file, manifest, 'canary');
    const res = await checkInOnce(r.ctx);
    assert.deepEqual(res.ok && res.applied, ['cmdline'], r.log.join('\n'));
    assert.equal(loadState(r.ctx.stateDir).enrollment?.serverPublicKey, rotated.publicKey);
    assert.match(r.log.join('\n'), /server key rotated: now trusting/);
    assert.equal(loadState(r.ctx.stateDir).patches[id]?.outcome, 'applied');
    const audit = await r.backend.admin<{ entries?: { action: string }[] } | { action: string }[]>(
      'GET',
      '/admin/v1/audit',
    );
    const entries = Array.isArray(audit) ? audit : (audit.entries ?? []);
    assert.equal(entries.filter((e) => e.action === 'key-rotate').length, 1, 'audited once');
  });
});

/*
 * What the check-in answer says of the machine's kernel (`kernelSupport`, kernel-support.ts): the pure
 * rule (flavour, patched / upgrade-required / unsupported, the kernels named newest first), then on
 * each engine through the real server — patched even when not offered to the machine's tier,
 * upgrade-required for another build or release of the flavour, unsupported otherwise, revoked patches
 * not counting — and the answer's signature covering the field.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyCheckinAnswer } from '../manifest/answer-signature.js';
import {
  ANSWER_FIELDS_HEADER,
  checkinResponseSchema,
  KERNEL_SUPPORT_FIELD,
  type KernelIdentity,
  machineApi,
} from '../manifest/protocol.js';
import { AdminClient } from './admin-client.js';
import { fleetPage } from './dashboard-pages.js';
import { kernelFlavour, kernelSupportOf } from './kernel-support.js';
import { OfferCache } from './offer-cache.js';
import { type RunningServer, startServer } from './server.js';
import { ServerSigner } from './signing.js';
import { openStore, type Store } from './store.js';
import { onEachEngine } from './testing/engines.js';
import { BUILD_ID, FakeMachine, OTHER_BUILD_ID, RELEASE, writePatch } from './testing/fleet-fixture.js';

const id = (c: string) => c.repeat(40);

test('the flavour is what follows the version in a release', () => {
  assert.equal(kernelFlavour('6.1.0-53-cloud-amd64'), 'cloud-amd64');
  assert.equal(kernelFlavour('6.1.0-53-amd64'), 'amd64');
  assert.equal(kernelFlavour('6.12.38+deb13-cloud-amd64'), 'cloud-amd64');
  assert.equal(kernelFlavour('6.1.0-53-rt-amd64'), 'rt-amd64');
  assert.equal(kernelFlavour('6.1.0'), '');
  assert.equal(kernelFlavour('6.1.0-53'), '');
});

test('patched for the exact kernel; else the newest few of its flavour; else unsupported', () => {
  const list = [
    { release: '6.1.0-53-cloud-amd64', buildId: id('a'), newest: '2026-01-01T00:00:00.000Z' },
    { release: '6.1.0-55-cloud-amd64', buildId: id('b'), newest: '2026-03-01T00:00:00.000Z' },
    { release: '6.1.0-54-cloud-amd64', buildId: id('c'), newest: '2026-02-01T00:00:00.000Z' },
    { release: '6.1.0-56-amd64', buildId: id('d'), newest: '2026-04-01T00:00:00.000Z' },
    { release: '6.1.0-52-cloud-amd64', buildId: id('e'), newest: '2025-12-01T00:00:00.000Z' },
    { release: '6.1.0-51-cloud-amd64', buildId: id('f'), newest: '2025-11-01T00:00:00.000Z' },
  ];
  assert.deepEqual(kernelSupportOf({ release: '6.1.0-53-cloud-amd64', buildId: id('a') }, list), {
    kernelSupport: 'patched',
  });
  assert.deepEqual(kernelSupportOf({ release: '6.1.0-53-cloud-amd64', buildId: id('9') }, list), {
    kernelSupport: 'upgrade-required',
    patchedKernels: [
      { release: '6.1.0-55-cloud-amd64', buildId: id('b') },
      { release: '6.1.0-54-cloud-amd64', buildId: id('c') },
      { release: '6.1.0-53-cloud-amd64', buildId: id('a') },
      { release: '6.1.0-52-cloud-amd64', buildId: id('e') },
    ],
  });
  assert.deepEqual(kernelSupportOf({ release: '6.1.0-50-amd64', buildId: id('9') }, list), {
    kernelSupport: 'upgrade-required',
    patchedKernels: [{ release: '6.1.0-56-amd64', buildId: id('d') }],
  });
  assert.deepEqual(kernelSupportOf({ release: '6.1.0-53-rt-amd64', buildId: id('a') }, list), {
    kernelSupport: 'unsupported',
  });
  assert.deepEqual(kernelSupportOf({ release: RELEASE, buildId: BUILD_ID }, []), {
    kernelSupport: 'unsupported',
  });
});

test('the offer cache reads the patched kernels once per expiry, not per check-in or per entry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'suture-kernel-cache-'));
  const store = await openStore(join(dir, 'suture.db'));
  try {
    let reads = 0;
    const counting = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'patchedKernels') {
          return () => {
            reads++;
            return target.patchedKernels();
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    }) as Store;
    const cache = new OfferCache(counting, await ServerSigner.open(store), 60_000);
    for (const tier of ['canary', 'stable']) {
      for (const buildId of [BUILD_ID, OTHER_BUILD_ID]) {
        const e = await cache.get(RELEASE, buildId, tier);
        assert.equal(e.support.kernelSupport, '"unsupported"');
        await cache.get(RELEASE, buildId, tier);
      }
    }
    assert.equal(reads, 1, 'four entries, eight check-ins: one read');
    cache.clear();
    await cache.get(RELEASE, BUILD_ID, 'canary');
    assert.equal(reads, 2, 'a publish, promote or revoke (clear) reads again');
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** A check-in as raw JSON (what the agent verifies); `asks` = the agent names kernel-support. */
async function rawCheckin(m: FakeMachine, asks = true): Promise<Record<string, unknown>> {
  const res = await fetch(m.server + machineApi.checkin, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${m.enrollment?.credential ?? ''}`,
      'content-type': 'application/json',
      ...(asks ? { [ANSWER_FIELDS_HEADER]: `other, ${KERNEL_SUPPORT_FIELD}` } : {}),
    },
    body: JSON.stringify({ kernel: m.kernel, hostname: m.hostname, agentVersion: 'fake-1', patches: [] }),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

const NEXT = { release: '6.1.0-54-cloud-amd64', buildId: id('b') };
const REVOKED = { release: '6.1.0-55-cloud-amd64', buildId: id('c') };
const GENERIC = { release: '6.1.0-56-amd64', buildId: id('d') };

onEachEngine('kernel_support', (engine, database) => {
  describe(`kernelSupport in the check-in answer on ${engine}`, () => {
    let dir: string;
    let server: RunningServer;
    let admin: AdminClient;
    let skip: string | undefined;
    let canary: string;
    const ids: Record<string, string> = {};

    const publish = async (name: string, k: KernelIdentity, tier: string) => {
      const w = await writePatch(dir, { name, release: k.release, buildId: k.buildId });
      ids[name] = (await admin.publish({ module: w.module, manifest: w.manifestPath, tier })).id;
    };
    const machine = async (host: string, kernel: KernelIdentity) => {
      const m = new FakeMachine(server.url, host, kernel);
      await m.enroll(canary);
      return m;
    };

    before(async () => {
      const db = await database();
      if (typeof db === 'object') {
        skip = db.skip;
        return;
      }
      dir = await mkdtemp(join(tmpdir(), 'suture-kernel-support-'));
      server = await startServer({ dataDir: join(dir, 'data'), ...(db ? { database: db } : {}) });
      admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
      canary = (await admin.createToken({ tier: 'canary', maxUses: 100 })).token;
      await publish('here', { release: RELEASE, buildId: BUILD_ID }, 'canary');
      await publish('next', NEXT, 'stable'); // not in the canary tier: still a patched kernel
      await publish('gone', REVOKED, 'canary');
      await admin.revoke(ids.gone ?? '', 'broken');
      await publish('generic', GENERIC, 'canary');
    });
    after(async () => {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('patched: a patch for this exact kernel, offered or only in another tier', async (t) => {
      if (skip) return t.skip(skip);
      const a = await (await machine('a', { release: RELEASE, buildId: BUILD_ID })).checkin();
      assert.equal(a.kernelSupport, 'patched');
      assert.equal(a.patchedKernels, undefined);
      assert.deepEqual(
        a.offered.map((o) => o.patchId),
        [ids.here],
      );
      const b = await (await machine('b', NEXT)).checkin();
      assert.equal(b.kernelSupport, 'patched', 'the stable-only patch counts for a canary machine');
      assert.deepEqual(b.offered, []);
    });

    test('upgrade-required: patches only for other kernels of the flavour, revoked ones left out', async (t) => {
      if (skip) return t.skip(skip);
      const other = await (await machine('c', { release: RELEASE, buildId: OTHER_BUILD_ID })).checkin();
      assert.equal(other.kernelSupport, 'upgrade-required');
      assert.deepEqual(other.patchedKernels, [NEXT, { release: RELEASE, buildId: BUILD_ID }]);
      const revokedOnly = await (await machine('d', REVOKED)).checkin();
      assert.equal(revokedOnly.kernelSupport, 'upgrade-required', 'its only patch was revoked');
      assert.deepEqual(
        revokedOnly.revoked.map((r) => r.patchId),
        [ids.gone],
      );
    });

    test('unsupported: nothing for this kernel nor its flavour; a revoke can make it so', async (t) => {
      if (skip) return t.skip(skip);
      const rt = await (await machine('e', { release: '6.1.0-53-rt-amd64', buildId: BUILD_ID })).checkin();
      assert.equal(rt.kernelSupport, 'unsupported');
      assert.equal(rt.patchedKernels, undefined);
      const g = await machine('f', { release: '6.1.0-50-amd64', buildId: id('e') });
      assert.deepEqual((await g.checkin()).patchedKernels, [GENERIC]);
      await admin.revoke(ids.generic ?? '', 'broken');
      assert.equal((await g.checkin()).kernelSupport, 'unsupported', 'the revoke cleared the cache');
    });

    test('the signature covers kernelSupport and patchedKernels', async (t) => {
      if (skip) return t.skip(skip);
      const m = await machine('g', { release: RELEASE, buildId: OTHER_BUILD_ID });
      const raw = await rawCheckin(m);
      const key = m.enrollment?.serverPublicKey ?? '';
      assert.equal(raw.kernelSupport, 'upgrade-required');
      assert.equal(verifyCheckinAnswer(raw, key), true);
      assert.equal(verifyCheckinAnswer({ ...raw, kernelSupport: 'unsupported' }, key), false, 'forged');
      const { kernelSupport: _, ...dropped } = raw;
      assert.equal(verifyCheckinAnswer(dropped, key), false, 'removed');
      assert.equal(verifyCheckinAnswer({ ...raw, patchedKernels: [GENERIC] }, key), false, 'renamed');
    });

    test('an agent that does not ask gets the answer of before: no field its strict schema refuses', async (t) => {
      if (skip) return t.skip(skip);
      const m = await machine('h', { release: RELEASE, buildId: OTHER_BUILD_ID });
      const raw = await rawCheckin(m, false);
      assert.equal('kernelSupport' in raw, false);
      assert.equal('patchedKernels' in raw, false);
      assert.equal(verifyCheckinAnswer(raw, m.enrollment?.serverPublicKey ?? ''), true);
      const before = checkinResponseSchema.omit({ kernelSupport: true, patchedKernels: true });
      assert.equal(before.safeParse(raw).success, true, 'the schema from before the field accepts it');
      assert.equal(before.safeParse(await rawCheckin(m)).success, false, 'and would refuse the field');
    });

    test("the dashboard's machines by kernel say what the server knows of each kernel", async (t) => {
      if (skip) return t.skip(skip);
      const html = fleetPage(
        {
          fleet: await server.store.fleet(),
          rollout: [],
          failures: [],
          patches: await server.store.listPatches(),
          machines: [],
          audit: [],
          halts: [],
        },
        'csrf',
      );
      const rows = [
        ...html.matchAll(
          /<tr><td class="mono">([^<]+)<\/td><td>.*?<\/td><td data-support="([a-z-]+)">(.*?)<\/td>/g,
        ),
      ].map((m) => [m[1], m[2]]);
      assert.deepEqual(rows.sort(), [
        ['6.1.0-50-amd64', 'unsupported'],
        ['6.1.0-53-cloud-amd64', 'patched'],
        ['6.1.0-53-cloud-amd64', 'upgrade-required'],
        ['6.1.0-53-rt-amd64', 'unsupported'],
        ['6.1.0-54-cloud-amd64', 'patched'],
        ['6.1.0-55-cloud-amd64', 'upgrade-required'],
      ]);
      assert.match(
        html,
        /upgrade required<\/span> <span class="muted mono">6\.1\.0-54-cloud-amd64, 6\.1\.0-53-cloud-amd64<\/span>/,
      );
    });

    test('/metrics counts the machines by what their answer says of their kernel', async (t) => {
      if (skip) return t.skip(skip);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const count = (support: string) =>
        Number(
          new RegExp(`^suture_machines_kernel_support\\{support="${support}"\\} (\\d+)$`, 'm').exec(
            text,
          )?.[1],
        );
      // a, b patched; c, d, g, h upgrade-required; e, and f since the revoke, unsupported
      assert.deepEqual(['patched', 'upgrade-required', 'unsupported'].map(count), [2, 4, 2], text);
    });
  });
});

/*
 * The dashboard's waves in headless Chromium (playwright-core, Debian's /usr/bin/chromium): a patch
 * published to canary in three waves over 40 machines; wave 1 applies, wave 2 opens, a wave-2
 * machine reports `bad` — the patch page shows each wave (size, applied, healthy, failed, opened) and
 * the halt with the kernel log excerpt, the fleet page lists the halt; after resume it is gone.
 * Screenshots go to artifacts/server/ (git-ignored).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from './admin-client.js';
import { rolloutBucket } from './store/rollouts.js';
import { CHROMIUM_MISSING, DashboardRig, SHOTS } from './testing/chromium.js';
import { FakeMachine, writePatch } from './testing/fleet-fixture.js';

const rig = new DashboardRig('dash-waves', { offerTtlMs: 0 });

test('the dashboard shows each wave of a rollout and its halt', async (t) => {
  const { dir, server, browser } = rig;
  if (!browser) return t.skip(CHROMIUM_MISSING);
  const admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const token = (await admin.createToken({ tier: 'canary' })).token;
  const fleet = Array.from({ length: 40 }, (_, i) => new FakeMachine(server.url, `web-${i}`));
  for (const m of fleet) await m.enroll(token);
  const w = await writePatch(dir, { name: 'meminfo' });
  const p = await admin.publish({
    module: w.module,
    manifest: w.manifestPath,
    tier: 'canary',
    rollout: { waves: [10, 50, 100], gateCheckins: 1, soakSeconds: 3600 },
  });
  const wave = (m: FakeMachine) => {
    const b = rolloutBucket(m.id);
    return b < 10 ? 1 : b < 50 ? 2 : 3;
  };
  const sizes = [1, 2, 3].map((n) => fleet.filter((m) => wave(m) === n).length);
  for (const m of fleet.filter((x) => wave(x) === 1)) {
    await m.report({ patchId: p.id, state: 'applied' });
    await m.checkin();
  }
  await server.store.advanceRollouts(new Date(Date.now() + 2 * 3600_000).toISOString());
  const failing = fleet.find((m) => wave(m) === 2);
  assert.ok(failing, '40 machines put one in wave 2');
  await failing.report({
    patchId: p.id,
    state: 'bad',
    reason: 'WARN after load',
    excerpt: 'WARNING: CPU: 1 PID: 311 at kernel/livepatch/core.c:1',
  });

  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${server.url}/login`);
  await page.fill('input[name=token]', server.createdAdminToken ?? '');
  await page.click('button[type=submit]');
  await page.goto(`${server.url}/patches/${p.id}`);
  const cells = async (n: number) =>
    page.$$eval(`table.waves tr[data-wave="${n}"] td`, (tds) =>
      tds.map((td) => td.textContent?.trim() ?? ''),
    );
  const [w1, w2, w3] = [await cells(1), await cells(2), await cells(3)];
  // tier, wave, up to, state, size, applied, healthy, failed, opened
  assert.deepEqual(w1.slice(1, 8), [
    '1',
    '10 %',
    'open',
    String(sizes[0]),
    String(sizes[0]),
    String(sizes[0]),
    '0',
  ]);
  assert.deepEqual(w2.slice(1, 8), ['2', '50 %', 'open', String(sizes[1]), '0', '0', '1']);
  assert.deepEqual(w3.slice(1, 8), ['3', '100 %', 'waiting', String(sizes[2]), '0', '0', '0']);
  assert.equal(w3[8], 'never', 'wave 3 has not opened');
  const halt = (await page.textContent('[data-halted="canary"]')) ?? '';
  assert.match(halt, /halted/);
  assert.match(halt, /WARN after load/);
  assert.match(halt, /kernel\/livepatch\/core\.c:1/, 'the kernel log excerpt is shown');
  await page.screenshot({ path: join(SHOTS, 'dashboard-waves.png'), fullPage: true });

  await page.goto(`${server.url}/`);
  assert.match((await page.textContent('#halts')) ?? '', new RegExp(p.id));
  await admin.resume(p.id, 'canary');
  await page.reload();
  assert.equal(await page.$('#halts'), null, 'resumed: no halt listed');
  await page.goto(`${server.url}/patches/${p.id}`);
  assert.equal(await page.$('[data-halted]'), null);
});

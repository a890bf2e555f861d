/*
 * The dashboard in headless Chromium (playwright-core, Debian's /usr/bin/chromium): log in with the
 * admin token, then follow a rollout — publish to canary, the canary machine applies it, promote to
 * stable, the stable machine fails with a reason, revoke — and check at each step what a person sees.
 * Screenshots go to artifacts/server/ (git-ignored).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { AdminClient } from './admin-client.js';
import { CHROMIUM_MISSING, DashboardRig, SHOTS } from './testing/chromium.js';
import { FakeMachine, OTHER_BUILD_ID, RELEASE, writePatch } from './testing/fleet-fixture.js';

const rig = new DashboardRig('dash');

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `dashboard-${name}.png`), fullPage: true });

test('the dashboard shows each step of a rollout', async (t) => {
  const { dir, server, browser } = rig;
  if (!browser) return t.skip(CHROMIUM_MISSING);
  const admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();

  // logged out: redirected to the login form; a wrong token is refused
  await page.goto(`${server.url}/`);
  assert.match(page.url(), /\/login$/);
  await page.fill('input[name=token]', 'sut_admin_wrong');
  await page.click('button[type=submit]');
  assert.match((await page.textContent('body')) ?? '', /not the admin token/);
  await page.fill('input[name=token]', server.createdAdminToken ?? '');
  await page.click('button[type=submit]');
  assert.equal(new URL(page.url()).pathname, '/');
  assert.match((await page.textContent('body')) ?? '', /No machine has enrolled yet/);
  await shot(page, '0-empty');

  const canaryToken = (await admin.createToken({ tier: 'canary' })).token;
  const stableToken = (await admin.createToken({ tier: 'stable' })).token;
  const canary = new FakeMachine(server.url, 'web-canary-01');
  const stable = new FakeMachine(server.url, 'db-stable-01');
  const stable2 = new FakeMachine(server.url, 'db-stable-02');
  const older = new FakeMachine(server.url, 'legacy-01', { release: RELEASE, buildId: OTHER_BUILD_ID });
  await canary.enroll(canaryToken);
  await stable.enroll(stableToken);
  await stable2.enroll(stableToken);
  await older.enroll(stableToken);
  for (const m of [canary, stable, stable2, older]) await m.checkin();

  const w = await writePatch(dir, { name: 'cmdline', cves: ['CVE-2026-31337'] });
  const p = await admin.publish({
    module: w.module,
    manifest: w.manifestPath,
    tier: 'canary',
    description: 'make /proc/cmdline show the patched banner',
  });
  await canary.report({ patchId: p.id, state: 'applied' });

  await page.reload();
  const row = page.locator(`tr[data-patch="${p.id}"]`);
  assert.match((await row.textContent()) ?? '', /cmdline/);
  assert.match((await row.textContent()) ?? '', /CVE-2026-31337/);
  assert.equal(await row.locator('.roll').count(), 1, 'only the canary tier so far');
  assert.equal(
    (await row.locator('.roll[data-tier=canary] .rollout-count').textContent())?.trim(),
    '1/1 applied',
  );
  const fleet = await page.locator('#fleet').textContent();
  assert.match(fleet ?? '', /6\.1\.0-53-cloud-amd64/);
  assert.equal(await page.locator('#card-machines b').textContent(), '4');
  assert.equal(await page.locator('#card-kernels b').textContent(), '2');
  await shot(page, '1-canary');

  await admin.promote(p.id, 'stable');
  await stable.checkin();
  await stable.report({ patchId: p.id, state: 'applied' });
  await stable2.report({
    patchId: p.id,
    state: 'failed',
    reason: 'transition stalled after 60 s: task 1234 (fio) sleeps in cmdline_proc_show',
    transition: {
      seconds: 60,
      stalled: true,
      blockingTasks: [{ pid: 1234, comm: 'fio', stack: ['cmdline_proc_show+0x1a/0x40'] }],
    },
  });
  await page.reload();
  assert.equal(await row.locator('.roll').count(), 2);
  assert.equal(
    (await row.locator('.roll[data-tier=stable] .rollout-count').textContent())?.trim(),
    '1/2 applied, 1 failed',
    'the machine on another build is not counted as eligible',
  );
  const failures = await page.locator('#failures').textContent();
  assert.match(failures ?? '', /db-stable-02/);
  assert.match(failures ?? '', /transition stalled after 60 s/);
  assert.match(failures ?? '', /fio \(1234\)/);
  assert.equal(await page.locator('#card-failed b').textContent(), '1');
  await shot(page, '2-stable-with-failure');

  // one machine: its patches and the CVEs they fix
  await page.click(`tr[data-machine="${canary.id}"] a`);
  assert.match(page.url(), new RegExp(`/machines/${canary.id}$`));
  assert.match((await page.locator('#cves-fixed').textContent()) ?? '', /CVE-2026-31337/);
  assert.match((await page.locator('#machine-patches').textContent()) ?? '', /applied/);
  await shot(page, '3-machine');

  // one patch: rollout by tier
  await page.goto(`${server.url}/patches/${p.id}`);
  assert.match(
    (await page.locator('#rollout').textContent()) ?? '',
    /1\/1 applied[\s\S]*1\/2 applied, 1 failed/,
  );
  const patchMachines = await page.locator('#patch-machines').textContent();
  assert.match(patchMachines ?? '', /web-canary-01[\s\S]*applied/);
  assert.match(patchMachines ?? '', /db-stable-02[\s\S]*failed[\s\S]*transition stalled/);
  await shot(page, '4-patch');

  await admin.revoke(p.id, 'stalls under I/O load');
  await page.goto(`${server.url}/`);
  assert.match((await row.textContent()) ?? '', /revoked/);
  // every step above is in the audit log, newest first, with its detail
  const audit = await page.locator('#audit tr').allTextContents();
  assert.deepEqual(
    audit.slice(1).map((r) => /(publish|promote|revoke|token\.create)/.exec(r)?.[1]),
    ['revoke', 'promote', 'publish', 'token.create', 'token.create'],
  );
  assert.match(audit[1] ?? '', /reason: stalls under I\/O load/);
  assert.match(audit[2] ?? '', /tier: stable/);
  await shot(page, '5-revoked');

  // the page escapes what agents send
  const evil = new FakeMachine(server.url, '<script>alert(1)</script>');
  await evil.enroll(canaryToken);
  await page.reload();
  assert.match((await page.locator('#machines').textContent()) ?? '', /<script>alert\(1\)<\/script>/);
  assert.equal(await page.locator('#machines script').count(), 0);
});

/*
 * Cross-site requests in a real browser (headless Chromium through playwright-core, as in
 * dashboard.test.ts). The operator is logged in to the dashboard; a page on another origin — another
 * port on the same loopback address, i.e. the same *site*, so the SameSite=Strict session cookie does
 * travel with its requests — submits forms to the admin API and to the dashboard's actions. Every one
 * is answered 403 and the database, sessions included, is exactly as before; the operator's session
 * still works; the dashboard cannot be framed; and its stylesheet passes the CSP.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { AdminClient } from './admin-client.js';
import { type RunningServer, startServer } from './server.js';
import { CHROMIUM_MISSING, launchChromium } from './testing/chromium.js';
import { writePatch } from './testing/fleet-fixture.js';

let dir: string;
let server: RunningServer;
let attacker: Server;
let attackerUrl: string;
let browser: Browser | undefined;
let patchId: string;

/** The attacker's pages: /N auto-submits form N of `forms`, /frame frames the dashboard. */
let forms: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-csrf-'));
  server = await startServer({ dataDir: join(dir, 'data') });
  const admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const w = await writePatch(dir, { name: 'cmdline' });
  patchId = (await admin.publish({ module: w.module, manifest: w.manifestPath, tier: 'canary' })).id;
  attacker = createServer((req, res) => {
    const n = Number((req.url ?? '').slice(1));
    const body =
      req.url === '/frame'
        ? `<iframe id="victim" src="${server.url}/" width="800" height="600"></iframe>`
        : `${forms[n] ?? ''}<script>document.forms[0].submit()</script>`;
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(`<!doctype html><html><body>${body}</body></html>`);
  });
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
  const addr = attacker.address();
  attackerUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((r) => attacker?.close(r));
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const field = (name: string, value: string) => `<input type="hidden" name="${name}" value='${value}'>`;

test('a page on another origin cannot act with the session cookie', async (t) => {
  if (!browser) return t.skip(CHROMIUM_MISSING);
  const context = await browser.newContext();
  const page = await context.newPage();
  const cspViolations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });

  await page.goto(`${server.url}/login`);
  await page.fill('input[name=token]', server.createdAdminToken ?? '');
  await page.click('button[type=submit]');
  assert.equal(new URL(page.url()).pathname, '/');
  // the stylesheet is allowed by its hash: the header is dark, and nothing was refused
  const bg = await page.evaluate(
    () => getComputedStyle(document.querySelector('header') as Element).backgroundColor,
  );
  assert.equal(bg, 'rgb(20, 26, 38)');
  await page.goto(`${server.url}/patches/${patchId}`);
  assert.equal(await page.locator('form#revoke').count(), 1, 'the patch page has its revoke form');
  assert.deepEqual(cspViolations, []);

  const target = (path: string) => `${server.url}${path}`;
  forms = [
    // the admin API as a form, urlencoded and as text/plain shaped like JSON
    `<form method="post" action="${target('/admin/v1/tokens')}">${field('tier', 'canary')}</form>`,
    `<form method="post" enctype="text/plain" action="${target('/admin/v1/tokens')}">${field('{"tier":"canary","note":"', '"}')}</form>`,
    `<form method="post" enctype="text/plain" action="${target(`/admin/v1/patches/${patchId}/revoke`)}">${field('{"reason":"', '"}')}</form>`,
    // the dashboard's own actions, with a guessed CSRF token
    `<form method="post" action="${target(`/patches/${patchId}/revoke`)}">${field('csrf', 'guess')}${field('reason', 'pwned')}</form>`,
    `<form method="post" action="${target(`/patches/${patchId}/promote`)}">${field('csrf', 'guess')}${field('tier', 'stable')}</form>`,
    `<form method="post" action="${target('/logout')}">${field('csrf', 'guess')}</form>`,
  ];
  const before = await server.store.dump();
  const sessions = before.sessions?.length;
  assert.equal(sessions, 1, 'one session: the operator’s');
  for (let i = 0; i < forms.length; i++) {
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(server.url) && r.request().method() === 'POST'),
      page.goto(`${attackerUrl}/${i}`),
    ]);
    const headers = await res.request().allHeaders();
    assert.match(
      headers.cookie ?? '',
      /suture_session=/,
      `form ${i}: the browser did send the session cookie`,
    );
    assert.equal(headers.origin, attackerUrl, `form ${i}: and said where it came from`);
    assert.equal(res.status(), 403, `form ${i}: ${await res.text()}`);
    assert.equal((JSON.parse(await res.text()) as { error: { code: string } }).error.code, 'ORIGIN-MISMATCH');
  }
  assert.deepEqual(await server.store.dump(), before, 'no token, revoke, promote or logout happened');

  // the operator is still logged in
  await page.goto(`${server.url}/`);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(await page.locator('#card-machines').count(), 1);

  // and another site cannot frame the dashboard (clickjacking)
  await page.goto(`${attackerUrl}/frame`);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  assert.ok(frame, 'the iframe exists');
  assert.equal(await frame.locator('#card-machines').count(), 0, 'but the dashboard does not render in it');
  await context.close();
});

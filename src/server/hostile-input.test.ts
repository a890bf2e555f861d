/*
 * Hostile input against the delivery path's upper layer (issue #12, defects 4-8), on SQLite and on a
 * throwaway PostgreSQL cluster, over real HTTP on loopback. Each row of the table is a request, the
 * status and error code it must get, and the proof that the database (every row of every table, or
 * the tables named) is exactly as before:
 *
 *   4  the dashboard cookie or a form body on the admin API; dashboard actions from another origin,
 *      without Origin, without or with a wrong CSRF token, without a session; logout by GET
 *   5  modules publish must refuse before signing (not ELF, not x86-64, not ET_REL, empty, too large,
 *      too much code, no .modinfo, no livepatch=Y, another name, another kernel's vermagic)
 *   6  reports for patches never offered; repeated reports; check-in states for foreign patches
 *   7  a revoked enrollment token, a disabled machine credential, a rotated admin token and its sessions
 *   8  NUL and other control characters in any text field, the same 400 on both stores
 *   #13 wave percentages outside 1..100, non-monotonic wave lists, halts and resumes that name no tier
 *
 * The rate limits (6) and the metrics token are sequences rather than rows: see the tests below the
 * table.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { errorResponseSchema } from '../manifest/protocol.js';
import { AdminClient } from './admin-client.js';
import type { RunningServer } from './server.js';
import { type EngineDatabase, onEachEngine } from './testing/engines.js';
import { FakeMachine, fakeModule, OTHER_BUILD_ID, RELEASE, writePatch } from './testing/fleet-fixture.js';
import { startRefusalServer } from './testing/refusal-rig.js';

interface Row {
  name: string;
  path: string;
  init: RequestInit & { headers?: Record<string, string> };
  status: number;
  /** the error code; undefined for a success that must change nothing (a repeated report) */
  code?: string;
  /** compare only these tables (a check-in always updates its machine's last-seen time) */
  tables?: string[];
}

const json = (body: unknown, headers: Record<string, string> = {}, method = 'POST') => ({
  method,
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(fields).toString(),
  redirect: 'manual' as const,
});

/** Log in through the dashboard's form: the session cookie and the CSRF token of its pages. */
async function dashboardSession(url: string, token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${url}/login`, form({ token }, { origin: url }));
  assert.equal(res.status, 303, await res.text());
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  assert.match(cookie, /^suture_session=[A-Za-z0-9_-]{43}$/);
  const page = await (await fetch(`${url}/`, { headers: { cookie } })).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(csrf, 'the logged-in page carries a CSRF token');
  return { cookie, csrf };
}

function suite(engine: string, database: EngineDatabase): void {
  describe(`hostile input on ${engine}`, () => {
    let dir: string;
    let server: RunningServer;
    let admin: AdminClient;
    let machine: FakeMachine;
    let patchId: string;
    let foreignPatchId: string;
    let session: { cookie: string; csrf: string };
    let skip: string | undefined;

    before(async () => {
      const db = await database();
      if (db && typeof db === 'object') {
        skip = db.skip;
        return;
      }
      ({ dir, server, admin, machine, patchId } = await startRefusalServer('hostile', db, {
        // the table sends many refused credentials from one address: the failure budget is tested below
        authFailuresPerMinute: 10_000,
        moduleBytes: 40_000,
        moduleText: 20_000,
      }));
      // a patch this machine is never offered: another build of the kernel
      const other = await writePatch(dir, { name: 'other', buildId: OTHER_BUILD_ID });
      foreignPatchId = (
        await admin.publish({ module: other.module, manifest: other.manifestPath, tier: 'canary' })
      ).id;
      await machine.checkin();
      session = await dashboardSession(server.url, server.createdAdminToken ?? '');
    });
    after(async () => {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    async function expectRow(row: Row): Promise<void> {
      const pick = (d: Record<string, unknown[]>) =>
        row.tables ? Object.fromEntries(row.tables.map((t) => [t, d[t]])) : d;
      const before = pick(await server.store.dump());
      const res = await fetch(server.url + row.path, { redirect: 'manual', ...row.init });
      const text = await res.text();
      assert.equal(res.status, row.status, `${row.name}: ${text}`);
      if (row.code) {
        const body = errorResponseSchema.parse(JSON.parse(text));
        assert.equal(body.error.code, row.code, `${row.name}: ${text}`);
        assert.ok(body.error.message.length > 10, `${row.name}: a clear message`);
      }
      assert.deepEqual(pick(await server.store.dump()), before, `${row.name}: the database changed`);
    }

    const bearer = () => ({ authorization: `Bearer ${server.createdAdminToken}` });
    const cred = () => ({ authorization: `Bearer ${machine.enrollment?.credential}` });
    const OTHER_ORIGIN = 'http://127.0.0.1:1';

    test('defect 4: cookies, forms and other origins', async (t) => {
      if (skip) return t.skip(skip);
      const own = { origin: server.url, cookie: session.cookie };
      const rows: Row[] = [
        {
          name: 'admin API with the session cookie only',
          path: '/admin/v1/tokens',
          init: json({ tier: 'canary' }, { cookie: session.cookie }),
          status: 401,
          code: 'AUTH-INVALID',
        },
        {
          name: 'admin API, form body with the admin token',
          path: '/admin/v1/tokens',
          init: form({ tier: 'canary' }, bearer()),
          status: 415,
          code: 'CONTENT-TYPE',
        },
        {
          name: 'admin API, text/plain body with the admin token',
          path: `/admin/v1/patches/${patchId}/revoke`,
          init: {
            ...json({ reason: 'x' }, bearer()),
            headers: { ...bearer(), 'content-type': 'text/plain' },
          },
          status: 415,
          code: 'CONTENT-TYPE',
        },
        {
          name: 'admin API from another origin, with the admin token and the cookie',
          path: `/admin/v1/patches/${patchId}/revoke`,
          init: json({ reason: 'x' }, { ...bearer(), cookie: session.cookie, origin: OTHER_ORIGIN }),
          status: 403,
          code: 'ORIGIN-MISMATCH',
        },
        {
          name: 'dashboard revoke from another origin',
          path: `/patches/${patchId}/revoke`,
          init: form({ csrf: session.csrf, reason: 'x' }, { ...own, origin: OTHER_ORIGIN }),
          status: 403,
          code: 'ORIGIN-MISMATCH',
        },
        {
          name: 'dashboard revoke without Origin',
          path: `/patches/${patchId}/revoke`,
          init: form({ csrf: session.csrf, reason: 'x' }, { cookie: session.cookie }),
          status: 403,
          code: 'ORIGIN-MISMATCH',
        },
        {
          name: 'dashboard revoke without the CSRF token',
          path: `/patches/${patchId}/revoke`,
          init: form({ reason: 'x' }, own),
          status: 403,
          code: 'CSRF-INVALID',
        },
        {
          name: 'dashboard promote with a wrong CSRF token',
          path: `/patches/${patchId}/promote`,
          init: form(
            { csrf: session.csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), tier: 'stable' },
            own,
          ),
          status: 403,
          code: 'CSRF-INVALID',
        },
        {
          name: 'dashboard promote without a session',
          path: `/patches/${patchId}/promote`,
          init: form({ csrf: session.csrf, tier: 'stable' }, { origin: server.url }),
          status: 403,
          code: 'SESSION-INVALID',
        },
        {
          name: 'logout from another origin (the session survives)',
          path: '/logout',
          init: form({ csrf: session.csrf }, { ...own, origin: OTHER_ORIGIN }),
          status: 403,
          code: 'ORIGIN-MISMATCH',
        },
        { name: 'logout by GET', path: '/logout', init: { headers: own }, status: 404, code: 'NOT-FOUND' },
        {
          name: 'login from another origin with the right token',
          path: '/login',
          init: form({ token: server.createdAdminToken ?? '' }, { origin: OTHER_ORIGIN }),
          status: 403,
          code: 'ORIGIN-MISMATCH',
        },
      ];
      for (const row of rows) await expectRow(row);
      // and the same-origin form with its token works (the rows above were refused for their flaw)
      const ok = await fetch(
        `${server.url}/patches/${patchId}/promote`,
        form({ csrf: session.csrf, tier: 'beta' }, own),
      );
      assert.equal(ok.status, 303);
      assert.deepEqual((await admin.resolvePatch(patchId)).tiers, ['beta', 'canary']);
      const audit = await admin.listAudit();
      assert.equal(audit[0]?.action, 'promote');
      assert.match(audit[0]?.actor ?? '', /^dashboard@/);
    });

    test('defect 5: publish inspects the module before signing', async (t) => {
      if (skip) return t.skip(skip);
      const good = fakeModule(1000, {
        name: 'livepatch_bad',
        livepatch: 'Y',
        vermagic: `${RELEASE} SMP preempt mod_unload modversions `,
      });
      const patched = (offset: number, value: number) => {
        const b = Buffer.from(good);
        b.writeUInt16LE(value, offset);
        return b;
      };
      const modinfo = (m: Record<string, string | undefined> | null, text = 1000) =>
        fakeModule(text, m && { name: 'livepatch_bad', livepatch: 'Y', vermagic: `${RELEASE} SMP `, ...m });
      const cases: Array<[string, Buffer, string]> = [
        ['a 0-byte module', Buffer.alloc(0), 'MODULE-EMPTY'],
        ['random bytes', Buffer.from('#!/bin/sh\nrm -rf /\n'.repeat(20)), 'MODULE-NOT-ELF'],
        ['an i386 ELF', patched(18, 3), 'MODULE-NOT-X86-64'],
        ['a shared object', patched(16, 3), 'MODULE-NOT-RELOCATABLE'],
        ['a module over the size cap', modinfo({}, 45_000), 'MODULE-TOO-LARGE'],
        ['a module over the code cap', modinfo({}, 30_000), 'MODULE-TEXT-TOO-LARGE'],
        ['no .modinfo', modinfo(null), 'MODULE-NO-MODINFO'],
        ['no livepatch=Y', modinfo({ livepatch: undefined }), 'MODULE-NOT-LIVEPATCH'],
        ['livepatch=N', modinfo({ livepatch: 'N' }), 'MODULE-NOT-LIVEPATCH'],
        ['another module name', modinfo({ name: 'livepatch_other' }), 'MODULE-NAME-MISMATCH'],
        ['another kernel', modinfo({ vermagic: '6.1.0-99-amd64 SMP ' }), 'MODULE-VERMAGIC-MISMATCH'],
        ['no vermagic', modinfo({ vermagic: undefined }), 'MODULE-VERMAGIC-MISMATCH'],
      ];
      for (const [i, [name, bytes, code]] of cases.entries()) {
        const w = await writePatch(dir, { name: 'bad', version: String(i + 1), bytes });
        const sha = createHash('sha256').update(bytes).digest('hex');
        await admin.call('PUT', `/admin/v1/artifacts/${sha}`, undefined, { data: bytes });
        await expectRow({
          name: `publish: ${name}`,
          path: '/admin/v1/patches',
          init: json({ manifest: w.manifest, tier: 'canary' }, bearer()),
          status: 400,
          code,
        });
      }
    });

    test('defect 6: reports only for what was offered, once', async (t) => {
      if (skip) return t.skip(skip);
      const report = (id: string, state = 'applied') =>
        json({ kernel: machine.kernel, action: 'apply', status: { patchId: id, state } }, cred());
      await machine.report({ patchId, state: 'applied' });
      const rows: Row[] = [
        {
          name: 'a report for a patch of another build',
          path: '/v1/report',
          init: report(foreignPatchId, 'applied'),
          status: 404,
          code: 'PATCH-NOT-OFFERED',
        },
        {
          name: 'a failure report for a patch of another build',
          path: '/v1/report',
          init: json(
            {
              kernel: machine.kernel,
              action: 'apply',
              status: { patchId: foreignPatchId, state: 'failed', reason: 'forged' },
            },
            cred(),
          ),
          status: 404,
          code: 'PATCH-NOT-OFFERED',
        },
        { name: 'the same report again', path: '/v1/report', init: report(patchId), status: 200 },
        {
          name: 'a check-in claiming a foreign patch',
          path: '/v1/checkin',
          init: json(
            {
              kernel: machine.kernel,
              hostname: 'm1',
              agentVersion: '1',
              patches: [
                { patchId, state: 'applied' },
                { patchId: foreignPatchId, state: 'failed', reason: 'forged' },
              ],
            },
            cred(),
          ),
          status: 200,
          tables: ['machine_patches', 'reports'],
        },
      ];
      for (const row of rows) await expectRow(row);
    });

    test('issue 13: bad wave lists and halts on unknown tiers are refused, nothing stored', async (t) => {
      if (skip) return t.skip(skip);
      const w = await writePatch(dir, { name: 'waves' });
      const put = await fetch(`${server.url}/admin/v1/artifacts/${w.manifest.module.sha256}`, {
        method: 'PUT',
        headers: { ...bearer(), 'content-type': 'application/octet-stream' },
        body: new Uint8Array(w.bytes),
      });
      assert.equal(put.status, 201);
      const publish = (waves: unknown) =>
        json(
          { manifest: w.manifest, tier: 'canary', rollout: { waves, gateCheckins: 1, soakSeconds: 60 } },
          bearer(),
        );
      const promote = (waves: unknown) => json({ tier: 'stable', rollout: { waves } }, bearer());
      const bad: Array<[string, unknown]> = [
        ['a wave of 0 %', [0, 50, 100]],
        ['a wave over 100 %', [10, 150]],
        ['a negative wave', [-10, 100]],
        ['a fractional wave', [10.5, 100]],
        ['a non-monotonic wave list', [50, 10, 100]],
        ['a repeated wave', [10, 10, 100]],
        ['a wave list not ending at 100', [10, 50]],
        ['an empty wave list', []],
        ['waves as text', '10,50,100'],
      ];
      const rows: Row[] = [
        ...bad.map(([name, waves]) => ({
          name: `publish with ${name}`,
          path: '/admin/v1/patches',
          init: publish(waves),
          status: 400,
          code: 'REQUEST-INVALID',
        })),
        ...bad.map(([name, waves]) => ({
          name: `promote with ${name}`,
          path: `/admin/v1/patches/${patchId}/promote`,
          init: promote(waves),
          status: 400,
          code: 'REQUEST-INVALID',
        })),
        {
          name: 'a negative soak time',
          path: '/admin/v1/patches',
          init: json(
            { manifest: w.manifest, tier: 'canary', rollout: { waves: [100], soakSeconds: -1 } },
            bearer(),
          ),
          status: 400,
          code: 'REQUEST-INVALID',
        },
        {
          name: 'resume for a tier the patch is not in',
          path: `/admin/v1/patches/${patchId}/resume`,
          init: json({ tier: 'stable' }, bearer()),
          status: 404,
          code: 'PATCH-TIER-UNKNOWN',
        },
        {
          name: 'a halt without a reason',
          path: `/admin/v1/patches/${patchId}/halt`,
          init: json({ tier: 'canary' }, bearer()),
          status: 400,
          code: 'REQUEST-INVALID',
        },
        {
          name: 'a bad report without a reason',
          path: '/v1/report',
          init: json({ kernel: machine.kernel, action: 'apply', status: { patchId, state: 'bad' } }, cred()),
          status: 400,
          code: 'REQUEST-INVALID',
        },
      ];
      for (const row of rows) await expectRow(row);
    });

    test('defect 7: revoked tokens, disabled machines, a rotated admin token', async (t) => {
      if (skip) return t.skip(skip);
      const tok = await admin.createToken({ tier: 'canary', maxUses: 5 });
      assert.equal((await admin.revokeToken(tok.id)).revokedAt !== undefined, true);
      const m2 = new FakeMachine(server.url, 'm2');
      await m2.enroll((await admin.createToken({ tier: 'canary' })).token);
      await m2.checkin();
      const disabled = await admin.setMachineDisabled(m2.id, true, 'stolen laptop');
      assert.ok(disabled.disabledAt);
      const m2cred = { authorization: `Bearer ${m2.enrollment?.credential}` };
      const checkin = { kernel: m2.kernel, hostname: 'm2', agentVersion: '1', patches: [] };
      const rows: Row[] = [
        {
          name: 'enroll with a revoked token',
          path: '/v1/enroll',
          init: json({ token: tok.token, hostname: 'h', kernel: m2.kernel, agentVersion: '1' }),
          status: 403,
          code: 'TOKEN-INVALID',
        },
        {
          name: 'check-in with a disabled credential',
          path: '/v1/checkin',
          init: json(checkin, m2cred),
          status: 403,
          code: 'MACHINE-DISABLED',
        },
        {
          name: 'report with a disabled credential',
          path: '/v1/report',
          init: json({ kernel: m2.kernel, action: 'apply', status: { patchId, state: 'applied' } }, m2cred),
          status: 403,
          code: 'MACHINE-DISABLED',
        },
        {
          name: 'download with a disabled credential',
          path: `/v1/patches/${patchId}/module`,
          init: { headers: m2cred },
          status: 403,
          code: 'MACHINE-DISABLED',
        },
        {
          name: 'revoke an unknown token',
          path: '/admin/v1/tokens/t-0000000000000000/revoke',
          init: json({}, bearer()),
          status: 404,
          code: 'TOKEN-UNKNOWN',
        },
        {
          name: 'disable an unknown machine',
          path: '/admin/v1/machines/m-nosuch/disable',
          init: json({}, bearer()),
          status: 404,
          code: 'MACHINE-UNKNOWN',
        },
      ];
      for (const row of rows) await expectRow(row);
      await admin.setMachineDisabled(m2.id, false);
      await m2.checkin();

      // rotation: the old token and the old session end; the new token works
      const oldToken = server.createdAdminToken ?? '';
      const { token } = await admin.rotateAdminToken();
      await new Promise((r) => setTimeout(r, 1100)); // the admin token hash is cached for one second
      const after: Row[] = [
        {
          name: 'the old admin token after rotation',
          path: '/admin/v1/tokens',
          init: json({ tier: 'canary' }, { authorization: `Bearer ${oldToken}` }),
          status: 401,
          code: 'AUTH-INVALID',
        },
        {
          name: 'the old session after rotation',
          path: `/patches/${patchId}/revoke`,
          init: form({ csrf: session.csrf }, { origin: server.url, cookie: session.cookie }),
          status: 403,
          code: 'SESSION-INVALID',
        },
        {
          name: 'the dashboard with the old session',
          path: '/',
          init: { headers: { cookie: session.cookie } },
          status: 302,
        },
      ];
      for (const row of after) await expectRow(row);
      admin = new AdminClient({ server: server.url, adminToken: token });
      server.createdAdminToken = token;
      const actions = (await admin.listAudit()).map((a) => a.action);
      for (const a of ['token.revoke', 'machine.disable', 'machine.enable', 'admin.rotate-token']) {
        assert.ok(actions.includes(a), `${a} is audited`);
      }
      session = await dashboardSession(server.url, token);
    });

    test('defect 8: control characters in text fields', async (t) => {
      if (skip) return t.skip(skip);
      const C = 'TEXT-CONTROL-CHARACTER';
      const checkin = (hostname: string) =>
        json({ kernel: machine.kernel, hostname, agentVersion: '1', patches: [] }, cred());
      const rows: Row[] = [
        {
          name: 'NUL in an enrollment hostname',
          path: '/v1/enroll',
          init: json({
            token: 'sut_enroll_x',
            hostname: 'a\u0000b',
            kernel: machine.kernel,
            agentVersion: '1',
          }),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a check-in hostname',
          path: '/v1/checkin',
          init: checkin('web\u0000'),
          status: 400,
          code: C,
        },
        {
          name: 'ESC in a check-in hostname',
          path: '/v1/checkin',
          init: checkin('\u001b[31mweb'),
          status: 400,
          code: C,
        },
        {
          name: 'C1 in a check-in hostname',
          path: '/v1/checkin',
          init: checkin('web\u0085'),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a failure reason',
          path: '/v1/report',
          init: json(
            {
              kernel: machine.kernel,
              action: 'apply',
              status: { patchId, state: 'failed', reason: 'x\u0000' },
            },
            cred(),
          ),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a token note',
          path: '/admin/v1/tokens',
          init: json({ tier: 'canary', note: 'n\u0000' }, bearer()),
          status: 400,
          code: C,
        },
        {
          name: 'DEL in a revoke reason',
          path: `/admin/v1/patches/${patchId}/revoke`,
          init: json({ reason: 'r\u007f' }, bearer()),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a field name',
          path: '/admin/v1/tokens',
          init: json('{"tier":"canary","no\\u0000te":"x"}', bearer()),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a query string',
          path: '/admin/v1/machines?limit=1%00',
          init: { headers: bearer() },
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a path parameter',
          path: '/admin/v1/machines/m%00x/tier',
          init: json({ tier: 'stable' }, bearer()),
          status: 400,
          code: C,
        },
        {
          name: 'NUL in a dashboard form',
          path: `/patches/${patchId}/revoke`,
          init: form(
            { csrf: session.csrf, reason: 'a\u0000' },
            { origin: server.url, cookie: session.cookie },
          ),
          status: 400,
          code: C,
        },
      ];
      for (const row of rows) await expectRow(row);
      // tab and newlines are text
      const res = await fetch(
        `${server.url}/admin/v1/tokens`,
        json({ tier: 'canary', note: 'a\tb\nc\r\n' }, bearer()),
      );
      assert.equal(res.status, 201);
    });
  });
}

onEachEngine('hostile_input', suite);

/*
 * Bad input at every edge of the HTTP API — malformed JSON, unknown fields, oversized bodies, wrong
 * content types, wrong tokens and credentials, forged uploads, rate limits — is answered 4xx with a
 * clear ErrorResponse, and the database (every row of every table) and the artifact store are exactly
 * as before. Run on SQLite and on a throwaway PostgreSQL cluster.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { errorResponseSchema } from '../manifest/protocol.js';
import type { RunningServer } from './server.js';
import { type EngineDatabase, onEachEngine } from './testing/engines.js';
import { type FakeMachine, writePatch } from './testing/fleet-fixture.js';
import { startRefusalServer } from './testing/refusal-rig.js';

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}

function suite(engine: string, database: EngineDatabase): void {
  describe(`bad input on ${engine}`, () => {
    let dir: string;
    let server: RunningServer;
    let machine: FakeMachine;
    let patchId: string;
    let skip: string | undefined;

    before(async () => {
      const db = await database();
      if (db && typeof db === 'object') {
        skip = db.skip;
        return;
      }
      ({ dir, server, machine, patchId } = await startRefusalServer('bad', db, {
        enrollPerMinute: 10,
        upload: 64 * 1024,
      }));
      await machine.checkin();
    });
    after(async () => {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    /** send, expect `status` and error `code`, and prove nothing changed */
    async function rejected(
      path: string,
      init: RequestInit & { headers?: Record<string, string> },
      status: number,
      code: string,
    ): Promise<{ message: string; detail?: string[] }> {
      const dbBefore = await server.store.dump();
      const filesBefore = await listTree(join(dir, 'data', 'artifacts'));
      const res = await fetch(server.url + path, init);
      const text = await res.text();
      assert.equal(res.status, status, `${init.method ?? 'GET'} ${path}: ${text}`);
      const body = errorResponseSchema.parse(JSON.parse(text));
      assert.equal(body.error.code, code, text);
      assert.ok(body.error.message.length > 10, `a clear message: ${body.error.message}`);
      assert.deepEqual(await server.store.dump(), dbBefore, `${path}: the database changed`);
      assert.deepEqual(
        await listTree(join(dir, 'data', 'artifacts')),
        filesBefore,
        `${path}: artifacts changed`,
      );
      return body.error;
    }

    const json = (body: unknown, headers: Record<string, string> = {}) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const kernel = () => machine.kernel;
    const cred = () => ({ authorization: `Bearer ${machine.enrollment?.credential}` });
    const adminAuth = () => ({ authorization: `Bearer ${server.createdAdminToken}` });
    const checkin = () => ({ kernel: kernel(), hostname: 'm1', agentVersion: '1', patches: [] });

    test('enroll', async (t) => {
      if (skip) return t.skip(skip);
      const good = { token: 'sut_enroll_x', hostname: 'h', kernel: kernel(), agentVersion: '1' };
      await rejected('/v1/enroll', json('{"token": "abc",'), 400, 'JSON-INVALID');
      const e = await rejected('/v1/enroll', json({ ...good, isAdmin: true }), 400, 'REQUEST-INVALID');
      assert.ok(
        e.detail?.some((d) => d.includes('isAdmin')),
        'the unknown field is named',
      );
      await rejected(
        '/v1/enroll',
        json({ ...good, kernel: { release: 'x', buildId: 'XYZ' } }),
        400,
        'REQUEST-INVALID',
      );
      await rejected('/v1/enroll', json('{"__proto__": {"x": 1}, "token": "a"}'), 400, 'JSON-INVALID');
      await rejected(
        '/v1/enroll',
        { ...json(good), headers: { 'content-type': 'text/plain' } },
        415,
        'CONTENT-TYPE',
      );
      await rejected('/v1/enroll', json({ ...good, hostname: 'x'.repeat(70_000) }), 413, 'BODY-TOO-LARGE');
    });

    test('check-in and report', async (t) => {
      if (skip) return t.skip(skip);
      await rejected('/v1/checkin', json(checkin()), 401, 'AUTH-INVALID');
      await rejected(
        '/v1/checkin',
        json(checkin(), { authorization: 'Bearer sut_machine_forged' }),
        401,
        'AUTH-INVALID',
      );
      await rejected('/v1/checkin', json(checkin(), { authorization: 'Basic abc' }), 401, 'AUTH-INVALID');
      // a valid credential does not make a bad body acceptable
      await rejected('/v1/checkin', json('{"kernel":', cred()), 400, 'JSON-INVALID');
      await rejected('/v1/checkin', json({ ...checkin(), tier: 'stable' }, cred()), 400, 'REQUEST-INVALID');
      const e = await rejected(
        '/v1/checkin',
        json({ ...checkin(), patches: [{ patchId, state: 'failed' }] }, cred()),
        400,
        'REQUEST-INVALID',
      );
      assert.ok(e.detail?.some((d) => d.includes('reason')));
      await rejected(
        '/v1/checkin',
        json({ ...checkin(), patches: [{ patchId, state: 'exploded' }] }, cred()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        '/v1/checkin',
        json({ ...checkin(), hostname: 'x'.repeat(70_000) }, cred()),
        413,
        'BODY-TOO-LARGE',
      );
      await rejected(
        '/v1/report',
        json(
          { kernel: kernel(), action: 'apply', status: { patchId: '0123456789abcdef', state: 'applied' } },
          cred(),
        ),
        404,
        'PATCH-UNKNOWN',
      );
      await rejected(
        '/v1/report',
        json({ kernel: kernel(), action: 'explode', status: { patchId, state: 'applied' } }, cred()),
        400,
        'REQUEST-INVALID',
      );
      await rejected('/v1/patches/../../etc/passwd/module', { headers: cred() }, 404, 'NOT-FOUND');
      await rejected('/v1/patches/XYZ/module', { headers: cred() }, 400, 'REQUEST-INVALID');
      await rejected(
        `/v1/patches/${patchId}/module`,
        { headers: { authorization: 'Bearer nope' } },
        401,
        'AUTH-INVALID',
      );
    });

    test('admin API', async (t) => {
      if (skip) return t.skip(skip);
      await rejected('/admin/v1/tokens', json({ tier: 'canary' }), 401, 'AUTH-INVALID');
      await rejected(
        '/admin/v1/tokens',
        json({ tier: 'canary' }, { authorization: 'Bearer sut_admin_x' }),
        401,
        'AUTH-INVALID',
      );
      await rejected('/admin/v1/tokens', json({ tier: 'Canary Tier' }, adminAuth()), 400, 'REQUEST-INVALID');
      await rejected(
        '/admin/v1/tokens',
        json({ tier: 'canary', admin: true }, adminAuth()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        '/admin/v1/patches',
        json({ manifest: { schema: 1 }, tier: 'canary' }, adminAuth()),
        400,
        'MANIFEST-INVALID',
      );
      const w = await writePatch(dir, { name: 'notuploaded' });
      await rejected(
        '/admin/v1/patches',
        json({ manifest: w.manifest, tier: 'canary' }, adminAuth()),
        409,
        'ARTIFACT-MISSING',
      );
      await rejected(
        '/admin/v1/patches',
        json({ manifest: w.manifest, tier: 'canary', cves: ['not-a-cve'] }, adminAuth()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        `/admin/v1/patches/${patchId}/promote`,
        json({ tier: 'stable', extra: 1 }, adminAuth()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        '/admin/v1/patches/0123456789abcdef/promote',
        json({ tier: 'stable' }, adminAuth()),
        404,
        'PATCH-UNKNOWN',
      );
      await rejected(
        `/admin/v1/machines/${machine.id}/tier`,
        json({ tier: 'stable', force: true }, adminAuth()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        `/admin/v1/machines/${machine.id}/tier`,
        json({ tier: '' }, adminAuth()),
        400,
        'REQUEST-INVALID',
      );
      await rejected(
        '/admin/v1/machines/m_nosuch/tier',
        json({ tier: 'stable' }, adminAuth()),
        404,
        'MACHINE-UNKNOWN',
      );
      await rejected(`/admin/v1/machines/${machine.id}/tier`, json({ tier: 'stable' }), 401, 'AUTH-INVALID');
      // uploads: bytes that do not hash to the announced sha256, over the limit, without auth
      const bytes = randomBytes(1000);
      const upload = (_sha: string, body: Uint8Array, headers: Record<string, string> = adminAuth()) => ({
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', ...headers },
        body: new Blob([new Uint8Array(body)]),
      });
      await rejected(`/admin/v1/artifacts/${'0'.repeat(64)}`, upload('', bytes), 400, 'UPLOAD-HASH-MISMATCH');
      const big = randomBytes(70 * 1024);
      const bigSha = createHash('sha256').update(big).digest('hex');
      await rejected(`/admin/v1/artifacts/${bigSha}`, upload(bigSha, big), 413, 'UPLOAD-TOO-LARGE');
      const sha = createHash('sha256').update(bytes).digest('hex');
      await rejected(`/admin/v1/artifacts/${sha}`, upload(sha, bytes, {}), 401, 'AUTH-INVALID');
      await rejected(
        `/admin/v1/artifacts/${sha}`,
        { ...upload(sha, bytes), headers: { ...adminAuth(), 'content-type': 'text/plain' } },
        415,
        'CONTENT-TYPE',
      );
      await rejected('/admin/v1/nothing', { headers: adminAuth() }, 404, 'NOT-FOUND');
    });

    test('rate limit on enrollment', async (t) => {
      if (skip) return t.skip(skip);
      const good = { token: 'sut_enroll_wrong', hostname: 'h', kernel: kernel(), agentVersion: '1' };
      let limited = false;
      for (let i = 0; i < 12 && !limited; i++) {
        const res = await fetch(`${server.url}/v1/enroll`, json(good));
        await res.text();
        limited = res.status === 429;
      }
      assert.ok(limited, 'more than 10 enrollments a minute from one address are refused');
      await rejected('/v1/enroll', json(good), 429, 'RATE-LIMITED');
    });
  });
}

onEachEngine('bad_input', suite);

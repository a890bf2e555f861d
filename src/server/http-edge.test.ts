/*
 * The HTTP edge in front of every route (issue #12, defects 4 and 6, and /metrics): rate limits that
 * run before authentication, count failures per client address and key on the parsed credential;
 * `--trust-proxy` for the client address and `Secure` cookies behind a TLS proxy; the metrics token;
 * anti-framing and CSP headers on every response. The limiter lives in the process, not the store,
 * so this runs on SQLite only; every refusal is also checked to change nothing in the database.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { errorResponseSchema } from '../manifest/protocol.js';
import { AdminClient } from './admin-client.js';
import { type RunningServer, type ServerOptions, startServer } from './server.js';
import { FakeMachine } from './testing/fleet-fixture.js';

let dir: string;
const servers: RunningServer[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-edge-'));
});
after(async () => {
  for (const s of servers) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function server(name: string, opts: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const s = await startServer({ dataDir: join(dir, name), ...opts });
  servers.push(s);
  return s;
}

async function send(
  s: RunningServer,
  path: string,
  init: RequestInit & { headers?: Record<string, string> },
): Promise<{ status: number; code?: string; headers: Headers }> {
  const before = await s.store.dump();
  const res = await fetch(s.url + path, { redirect: 'manual', ...init });
  const text = await res.text();
  const code = res.status >= 400 ? errorResponseSchema.parse(JSON.parse(text)).error.code : undefined;
  if (res.status >= 400)
    assert.deepEqual(await s.store.dump(), before, `${path} ${res.status}: the database changed`);
  return { status: res.status, ...(code ? { code } : {}), headers: res.headers };
}

const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

test('limits count before authentication, by parsed credential, and failures per address', async () => {
  const s = await server('limits', { limits: { checkinPerMinute: 3, authFailuresPerMinute: 5 } });
  const admin = new AdminClient({ server: s.url, adminToken: s.createdAdminToken ?? '' });
  const m = new FakeMachine(s.url, 'm1');
  await m.enroll((await admin.createToken({ tier: 'canary' })).token);
  const cred = m.enrollment?.credential ?? '';
  const checkin = { kernel: m.kernel, hostname: 'm1', agentVersion: '1', patches: [] };

  // the same credential however the header is spelt: one budget
  const spellings = [`Bearer ${cred}`, `bearer ${cred}`, `BEARER   ${cred}`, `Bearer\t${cred}`];
  const got = [];
  for (const authorization of spellings)
    got.push(await send(s, '/v1/checkin', post(checkin, { authorization })));
  assert.deepEqual(
    got.map((r) => r.status),
    [200, 200, 200, 429],
  );
  assert.equal(got[3]?.code, 'RATE-LIMITED');
  assert.ok(Number(got[3]?.headers.get('retry-after')) >= 1);

  // without a credential: limited per address like the rest (and each is a failure of the address)
  const anon = [];
  for (let i = 0; i < 4; i++) anon.push(await send(s, '/v1/checkin', post(checkin)));
  assert.deepEqual(
    anon.map((r) => r.code),
    ['AUTH-INVALID', 'AUTH-INVALID', 'AUTH-INVALID', 'RATE-LIMITED'],
  );

  // two wrong admin tokens make five failures: from then on even the right token is refused first
  for (const wrong of ['sut_admin_guess1', 'sut_admin_guess2']) {
    assert.equal(
      (await send(s, '/admin/v1/tokens', post({ tier: 'x' }, { authorization: `Bearer ${wrong}` }))).code,
      'AUTH-INVALID',
    );
  }
  const right = await send(
    s,
    '/admin/v1/tokens',
    post({ tier: 'canary' }, { authorization: `Bearer ${s.createdAdminToken}` }),
  );
  assert.equal(right.code, 'RATE-LIMITED');
  const forged = await send(
    s,
    '/v1/checkin',
    post(checkin, { authorization: 'Bearer sut_machine_fresh_forgery' }),
  );
  assert.equal(forged.code, 'RATE-LIMITED', 'a fresh forged credential starts no fresh budget');
});

test('--trust-proxy: the forwarded address is the key, the forwarded scheme makes cookies Secure', async () => {
  const s = await server('proxy', { trustProxy: ['loopback'], limits: { authFailuresPerMinute: 2 } });
  const wrong = (from: string) =>
    send(
      s,
      '/admin/v1/tokens',
      post({ tier: 'canary' }, { authorization: 'Bearer sut_admin_no', 'x-forwarded-for': from }),
    );
  assert.equal((await wrong('10.0.0.1')).code, 'AUTH-INVALID');
  assert.equal((await wrong('10.0.0.1')).code, 'AUTH-INVALID');
  assert.equal((await wrong('10.0.0.1')).code, 'RATE-LIMITED');
  assert.equal(
    (await wrong('10.0.0.2')).code,
    'AUTH-INVALID',
    'another client behind the proxy is not punished',
  );

  const host = new URL(s.url).host;
  const login = (headers: Record<string, string>) =>
    fetch(`${s.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: `token=${encodeURIComponent(s.createdAdminToken ?? '')}`,
    });
  const viaTls = await login({
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '10.0.0.3',
    origin: `https://${host}`,
  });
  assert.equal(viaTls.status, 303);
  assert.match(
    viaTls.headers.get('set-cookie') ?? '',
    /^suture_session=.*; HttpOnly; SameSite=Strict; .*; Secure$/,
  );

  // without --trust-proxy the same headers count for nothing: plain http, and that Origin is foreign
  const direct = await server('direct');
  const res = await fetch(`${direct.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-forwarded-proto': 'https',
      origin: `https://${new URL(direct.url).host}`,
    },
    body: `token=${encodeURIComponent(direct.createdAdminToken ?? '')}`,
  });
  assert.equal(res.status, 403);
  assert.match(await res.text(), /--trust-proxy/, 'the refusal says what is missing');
  const plain = await fetch(`${direct.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: direct.url },
    body: `token=${encodeURIComponent(direct.createdAdminToken ?? '')}`,
  });
  assert.doesNotMatch(plain.headers.get('set-cookie') ?? '', /Secure/);
});

test('/metrics with --metrics-token needs it as Bearer', async () => {
  const token = 'metrics-token-0123456789abcdef';
  const s = await server('metrics', { metricsToken: token });
  assert.equal((await send(s, '/metrics', {})).code, 'AUTH-INVALID');
  assert.equal(
    (await send(s, '/metrics', { headers: { authorization: 'Bearer wrong-token' } })).code,
    'AUTH-INVALID',
  );
  const ok = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /^# HELP suture_machines /m);
  const open = await server('metrics-open');
  assert.equal((await fetch(`${open.url}/metrics`)).status, 200, 'without the option /metrics stays open');
});

test('every response forbids framing and carries a strict CSP', async () => {
  const s = await server('headers');
  for (const [path, init] of [
    ['/login', {}],
    ['/', {}],
    ['/metrics', {}],
    ['/admin/v1/tokens', {}],
    ['/v1/checkin', post({})],
    ['/no/such/page', {}],
  ] as const) {
    const res = await fetch(s.url + path, { redirect: 'manual', ...init });
    await res.text();
    assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, path);
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.match(csp, /form-action 'self'/, path);
    assert.doesNotMatch(csp, /unsafe-inline|script-src/, path);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
  }
});

test('restarting with another --admin-token ends the old token and its sessions; the same one keeps them', async () => {
  const data = join(dir, 'restart');
  const login = async (s: RunningServer, token: string) => {
    const res = await fetch(`${s.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.url },
      body: `token=${encodeURIComponent(token)}`,
    });
    return (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  };
  const loggedIn = async (s: RunningServer, cookie: string) =>
    (await fetch(`${s.url}/`, { redirect: 'manual', headers: { cookie } })).status === 200;
  const first = await startServer({ dataDir: data, adminToken: 'first-admin-token-0123' });
  const cookie = await login(first, 'first-admin-token-0123');
  assert.ok(await loggedIn(first, cookie));
  await first.close();

  const same = await startServer({ dataDir: data, adminToken: 'first-admin-token-0123' });
  assert.ok(await loggedIn(same, cookie), 'the same token keeps its sessions');
  await same.close();

  const other = await startServer({ dataDir: data, adminToken: 'second-admin-token-456' });
  servers.push(other);
  assert.equal(await loggedIn(other, cookie), false, 'the old session ended');
  const old = await send(other, '/admin/v1/tokens', {
    headers: { authorization: 'Bearer first-admin-token-0123' },
  });
  assert.equal(old.code, 'AUTH-INVALID');
  assert.equal((await other.store.listAudit())[0]?.action, 'admin.rotate-token');
});

test('failed dashboard logins count as failed authentications of their address', async () => {
  const s = await server('logins', { limits: { authFailuresPerMinute: 2 } });
  const login = async (token: string) => {
    const res = await fetch(`${s.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.url },
      body: `token=${encodeURIComponent(token)}`,
    });
    await res.text();
    return { status: res.status, location: res.headers.get('location') };
  };
  assert.deepEqual(await login('sut_admin_guess'), { status: 303, location: '/login?failed=1' });
  assert.deepEqual(await login('sut_admin_guess'), { status: 303, location: '/login?failed=1' });
  assert.equal(
    (await login(s.createdAdminToken ?? '')).status,
    429,
    'the third try is refused before the token is read',
  );
  assert.deepEqual((await s.store.dump()).sessions, [], 'no session was opened');
});

/*
 * The server over HTTPS with a private CA, as an operator without a public certificate runs it:
 * certificates made by openssl for the test (a CA, and a server certificate for 127.0.0.1 signed by it).
 * The real `suture` CLI runs as a child process, because Node reads NODE_EXTRA_CA_CERTS only at start:
 *   - `agent enable` and `suture machines` work when the CA is trusted that way;
 *   - without it, each fails with its TLS diagnostic (what, and how to trust the CA) and the agent
 *     writes no state;
 *   - the dashboard's session cookie is Secure over HTTPS;
 *   - a key that does not belong to the certificate, or a missing file, is refused before listening.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashSecret } from './credentials.js';
import { type RunningServer, startServer } from './server.js';

const ADMIN = 'sut_admin_tls-test-admin-token';
const TOKEN = 'sut_enroll_tls-test-enrollment-token';
let dir: string;
let server: RunningServer;
let skip: string | undefined;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-tls-'));
  if (spawnSync('openssl', ['version']).status !== 0) {
    skip = 'openssl is not installed (apt-get install openssl); CI installs it';
    return;
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Suture test CA',
  );
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  server = await startServer({
    dataDir: join(dir, 'data'),
    adminToken: ADMIN,
    tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
  });
  await server.store.createToken(
    {
      id: 't-tls',
      hash: hashSecret(TOKEN),
      tier: 'canary',
      note: '',
      uses: 0,
      createdAt: new Date().toISOString(),
    },
    { at: new Date().toISOString(), actor: 'test', action: 'token.create', target: 't-tls', detail: {} },
  );
});
after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** `suture ARGS…` as a child process (async: this process serves its requests); `ca` sets NODE_EXTRA_CA_CERTS. */
function suture(
  args: string[],
  ca?: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  if (ca) env.NODE_EXTRA_CA_CERTS = ca;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/suture.js', ...args], { env, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('agent and admin CLI over HTTPS: trusted through NODE_EXTRA_CA_CERTS, refused with a hint without', async (t) => {
  if (skip) return t.skip(skip);
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ca = join(dir, 'ca.pem');

  const untrusted = join(dir, 'agent-untrusted');
  const no = await suture(['agent', 'enable', TOKEN, '--server', server.url, '--state-dir', untrusted]);
  assert.equal(no.status, 1, no.stderr);
  assert.match(no.stderr, /AGENT-SERVER-TLS/);
  assert.match(no.stderr, /not trusted/);
  assert.match(no.stderr, /NODE_EXTRA_CA_CERTS/);
  assert.match(no.stderr, /nothing was changed/);
  assert.ok(!existsSync(join(untrusted, 'state.json')), 'no enrollment was recorded');

  const agentDir = join(dir, 'agent');
  const yes = await suture(['agent', 'enable', TOKEN, '--server', server.url, '--state-dir', agentDir], ca);
  assert.equal(yes.status, 0, yes.stderr);
  assert.match(yes.stdout, /^enrolled as m-[0-9a-f]{16} \(tier canary\)/m);
  assert.doesNotMatch(yes.stderr, /plain HTTP/, 'no clear-text warning over HTTPS');

  const admin = ['machines', '--json', '--server', server.url, '--admin-token', ADMIN];
  const listed = await suture(admin, ca);
  assert.equal(listed.status, 0, listed.stderr);
  assert.equal((JSON.parse(listed.stdout) as unknown[]).length, 1);
  const refused = await suture(admin);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /ADMIN-TLS/);
  assert.match(refused.stderr, /NODE_EXTRA_CA_CERTS/);
});

test('the dashboard cookie is Secure over HTTPS', async (t) => {
  if (skip) return t.skip(skip);
  const ca = readFileSync(join(dir, 'ca.pem'));
  const cookie = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${server.url}/login`,
      {
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.url },
      },
      (res) => {
        res.resume();
        resolve(String(res.headers['set-cookie'] ?? ''));
      },
    );
    req.on('error', reject);
    req.end(`token=${encodeURIComponent(ADMIN)}`);
  });
  assert.match(cookie, /^suture_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; .*; Secure$/);
});

test('a key that is not the certificate’s, or a missing file, is refused before listening', async (t) => {
  if (skip) return t.skip(skip);
  const data = join(dir, 'data-bad');
  await assert.rejects(
    startServer({ dataDir: data, tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'ca.key') } }),
    (e: Error & { code?: string }) => e.code === 'SERVER-TLS' && /do not make a usable pair/.test(e.message),
  );
  await assert.rejects(
    startServer({
      dataDir: data,
      tls: { certFile: join(dir, 'nope.pem'), keyFile: join(dir, 'server.key') },
    }),
    (e: Error & { code?: string }) =>
      e.code === 'SERVER-TLS' && /cannot read the TLS certificate/.test(e.message),
  );
  assert.ok(!existsSync(data), 'nothing was created');
});

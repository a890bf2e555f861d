import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTransportFailure, isCleartextRemote } from './transport.js';

test('plain HTTP is flagged only when it leaves this machine', () => {
  for (const url of ['http://10.0.2.2:7070', 'http://livepatch.example', 'http://[2001:db8::1]:80']) {
    assert.equal(isCleartextRemote(url), true, url);
  }
  for (const url of [
    'https://livepatch.example',
    'http://127.0.0.1:7070',
    'http://localhost',
    'http://[::1]:1',
    'not a url',
  ]) {
    assert.equal(isCleartextRemote(url), false, url);
  }
});

test('a certificate failure is told apart from a refused connection, with the way out', () => {
  const fail = (code: string, message: string) =>
    describeTransportFailure(Object.assign(new TypeError('fetch failed'), { cause: { code, message } }));
  const selfSigned = fail('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate');
  assert.equal(selfSigned.tls?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  assert.match(selfSigned.tls?.hint ?? '', /NODE_EXTRA_CA_CERTS/);
  assert.match(fail('ERR_TLS_CERT_ALTNAME_INVALID', 'altname').tls?.hint ?? '', /host name/);
  assert.match(fail('CERT_HAS_EXPIRED', 'expired').tls?.hint ?? '', /renew/);
  const refused = fail('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1');
  assert.equal(refused.tls, undefined);
  assert.match(refused.message, /connection refused/);
  const timeout = describeTransportFailure(Object.assign(new Error('x'), { name: 'TimeoutError' }));
  assert.equal(timeout.message, 'the server did not answer in time');
});

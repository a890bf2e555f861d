/*
 * Signed check-in answers and key rotation announcements: what the signature covers, and how an agent
 * follows a chain of rotations from the key it trusts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { checkinSignedBytes, signCheckinParts, verifyCheckinAnswer } from './answer-signature.js';
import { announceKey, followKeyChain, verifyAnnouncement } from './key-rotation.js';
import { canonicalJson } from './manifest.js';
import { generateSigningKey, publicKeyToBase64 } from './signature.js';

const answer = {
  machineId: 'm-0123456789abcdef',
  tier: 'canary',
  sequence: 7,
  issuedAt: '2026-12-01T10:00:00.000Z',
  offered: [{ patchId: 'abcdefabcdefabcd', size: 10, url: '/v1/patches/abcdefabcdefabcd/module' }],
  revoked: [{ patchId: '0123012301230123', name: 'old', moduleName: 'livepatch_old' }],
  nextCheckinSeconds: 600,
};

function signed(k = generateSigningKey()) {
  const parts = Object.fromEntries(Object.entries(answer).map(([f, v]) => [f, canonicalJson(v)]));
  const { text, signature } = signCheckinParts(parts, k.privateKey);
  return { k, value: { ...(JSON.parse(text) as Record<string, unknown>), signature, keys: [] } };
}

test('the server signs canonical parts; the agent verifies the parsed JSON, whatever the key order', () => {
  const { k, value } = signed();
  assert.equal(verifyCheckinAnswer(value, publicKeyToBase64(k.publicKey)), true);
  const reordered = Object.fromEntries(Object.entries(value).reverse());
  assert.equal(verifyCheckinAnswer(reordered, k.publicKey), true);
  assert.equal(
    checkinSignedBytes(value).toString(),
    `suture-checkin-v1\n${canonicalJson(answer)}`,
    'signature and keys are not covered; everything else is',
  );
});

test('every field is covered: changing any one breaks the signature', () => {
  const { k, value } = signed();
  const changes: Record<string, unknown> = {
    machineId: 'm-ffffffffffffffff',
    tier: 'stable',
    sequence: 8,
    issuedAt: '2026-12-02T10:00:00.000Z',
    offered: [],
    revoked: [],
    nextCheckinSeconds: 1,
  };
  for (const [field, v] of Object.entries(changes)) {
    assert.equal(verifyCheckinAnswer({ ...value, [field]: v }, k.publicKey), false, field);
  }
  assert.equal(verifyCheckinAnswer({ ...value, extra: 1 }, k.publicKey), false, 'an added field');
  assert.equal(verifyCheckinAnswer(value, generateSigningKey().publicKey), false, 'another key');
  assert.equal(verifyCheckinAnswer({ ...value, signature: 'AAAA' }, k.publicKey), false);
});

test('key rotation: the chain moves trust only from the trusted key, one verified step at a time', () => {
  const k0 = generateSigningKey();
  const k1 = generateSigningKey();
  const k2 = generateSigningKey();
  const a1 = announceKey(k1.publicKey, k0, '2026-12-01T00:00:00.000Z');
  const a2 = announceKey(k2.publicKey, k1, '2026-12-02T00:00:00.000Z');
  assert.equal(verifyAnnouncement(a1), true);
  const b64 = (k: typeof k0) => publicKeyToBase64(k.publicKey);
  assert.deepEqual(followKeyChain(b64(k0), [a1, a2]), { key: b64(k2), adopted: [a1, a2] });
  assert.deepEqual(followKeyChain(b64(k1), [a1, a2]), { key: b64(k2), adopted: [a2] }, 'older ones skipped');
  assert.deepEqual(followKeyChain(b64(k2), [a1, a2]), { key: b64(k2), adopted: [] });
  // an announcement from a key never trusted here is ignored
  const stranger = generateSigningKey();
  const foreign = announceKey(generateSigningKey().publicKey, stranger, '2026-12-03T00:00:00.000Z');
  assert.deepEqual(followKeyChain(b64(k0), [foreign]), { key: b64(k0), adopted: [] });
  // one claiming to come from the trusted key but signed by another is an error
  const forged = { ...foreign, previous: b64(k0) };
  assert.throws(
    () => followKeyChain(b64(k0), [forged]),
    (e: unknown) => isSutureError(e) && e.diagnostic.code === 'KEY-ANNOUNCEMENT-INVALID',
  );
  // an announcement's signature is not a manifest's or an answer's: the domains differ
  assert.equal(verifyAnnouncement({ ...a1, at: '2026-12-01T00:00:01.000Z' }), false);
});

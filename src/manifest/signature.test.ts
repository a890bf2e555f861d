import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Manifest, parseManifest } from './manifest.js';
import { checkinRequestSchema, checkinResponseSchema, enrollRequestSchema } from './protocol.js';
import {
  assertManifestSignature,
  generateSigningKey,
  keyFingerprint,
  privateKeyFromPem,
  privateKeyToPem,
  publicKeyFromBase64,
  publicKeyToBase64,
  signManifest,
  verifyManifest,
} from './signature.js';

const BUILD_ID = 'a'.repeat(40);

function manifest(): Manifest {
  return parseManifest({
    schema: 1,
    name: 'cmdline',
    kernel: { release: '6.1.0-53-cloud-amd64', buildId: BUILD_ID },
    objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0 }] }],
    module: { file: 'livepatch-cmdline.ko', sha256: 'b'.repeat(64), name: 'livepatch_cmdline' },
    tool: { name: 'suture', version: '0.1.0' },
  });
}

test('a signed manifest verifies with the raw base64 public key', () => {
  const k = generateSigningKey();
  const m = manifest();
  const sig = signManifest(m, k.privateKey);
  assert.equal(Buffer.from(sig, 'base64').length, 64);
  const pub = publicKeyToBase64(k.publicKey);
  assert.equal(Buffer.from(pub, 'base64').length, 32);
  assert.equal(verifyManifest(m, sig, pub), true);
  assert.equal(verifyManifest(m, sig, publicKeyFromBase64(pub)), true);
  // key order does not matter: canonical JSON
  const reordered = Object.fromEntries(Object.entries(m).reverse()) as Manifest;
  assert.equal(verifyManifest(reordered, sig, pub), true);
});

test('changing the module hash, the build id or the key breaks the signature', () => {
  const k = generateSigningKey();
  const m = manifest();
  const sig = signManifest(m, k.privateKey);
  assert.equal(
    verifyManifest({ ...m, module: { ...m.module, sha256: 'c'.repeat(64) } }, sig, k.publicKey),
    false,
  );
  assert.equal(
    verifyManifest({ ...m, kernel: { ...m.kernel, buildId: 'd'.repeat(40) } }, sig, k.publicKey),
    false,
  );
  assert.equal(verifyManifest(m, sig, generateSigningKey().publicKey), false);
  assert.equal(verifyManifest(m, 'not-a-signature', k.publicKey), false);
  assert.throws(
    () => assertManifestSignature({ ...m, version: '2' }, sig, k.publicKey),
    (e: Error & { code?: string }) => e.code === 'SIGNATURE-INVALID',
  );
});

test('the private key round-trips through PEM and has a stable fingerprint', () => {
  const k = generateSigningKey();
  const back = privateKeyFromPem(privateKeyToPem(k.privateKey));
  assert.equal(publicKeyToBase64(back.publicKey), publicKeyToBase64(k.publicKey));
  assert.equal(keyFingerprint(back.publicKey), keyFingerprint(publicKeyToBase64(k.publicKey)));
  assert.match(keyFingerprint(k.publicKey), /^[0-9a-f]{16}$/);
  assert.throws(
    () => privateKeyFromPem('garbage'),
    (e: Error & { code?: string }) => e.code === 'KEY-INVALID',
  );
  assert.throws(
    () => publicKeyFromBase64('AAAA'),
    (e: Error & { code?: string }) => e.code === 'KEY-INVALID',
  );
});

test('protocol objects are strict and a failed patch needs a reason', () => {
  const kernel = { release: '6.1.0-53-cloud-amd64', buildId: BUILD_ID };
  assert.equal(
    enrollRequestSchema.safeParse({ token: 't', hostname: 'h', kernel, agentVersion: '1' }).success,
    true,
  );
  assert.equal(
    enrollRequestSchema.safeParse({ token: 't', hostname: 'h', kernel, agentVersion: '1', extra: 1 }).success,
    false,
  );
  const base = { kernel, hostname: 'h', agentVersion: '1' };
  assert.equal(
    checkinRequestSchema.safeParse({ ...base, patches: [{ patchId: '0123456789abcdef', state: 'failed' }] })
      .success,
    false,
  );
  const ok = checkinRequestSchema.parse({
    ...base,
    patches: [
      { patchId: '0123456789abcdef', state: 'failed', reason: 'insmod: Invalid argument' },
      {
        patchId: 'fedcba9876543210',
        state: 'transition',
        transition: { seconds: 61, stalled: true, blockingTasks: [{ pid: 42, comm: 'kworker/0:1' }] },
      },
    ],
  });
  assert.deepEqual(ok.patches[1]?.transition?.blockingTasks[0]?.stack, []);
  assert.equal(
    checkinResponseSchema.safeParse({
      machineId: 'm',
      tier: 'stable',
      offered: [],
      revoked: [],
      nextCheckinSeconds: 0,
    }).success,
    false,
  );
});

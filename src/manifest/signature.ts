/*
 * Manifest signatures: ed25519 over the canonical JSON of a manifest.
 *
 * The server signs every manifest it publishes; the agent verifies the signature with the public key it
 * received at enrollment before it downloads, let alone loads, anything. The manifest carries
 * `module.sha256` and the exact kernel (release + build id), so one signature covers the module's bytes
 * and the kernel it may be loaded onto. The signed bytes are a fixed domain prefix followed by
 * canonicalJson(manifest), so a Suture signature can never be replayed as a signature over anything else.
 *
 * Keys travel as raw base64 (32-byte public key, the enrollment response's `serverPublicKey`); the
 * server keeps its private key as PKCS#8 PEM on disk. Uses node:crypto only. Leaf file.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { SutureError } from '../diagnostic.js';
import { canonicalJson, type Manifest } from './manifest.js';

const DOMAIN = 'suture-manifest-v1\n';

/** The exact bytes that are signed for a manifest. */
export function signedPayload(manifest: Manifest): Buffer {
  return Buffer.from(DOMAIN + canonicalJson(manifest), 'utf8');
}

export interface SigningKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateSigningKey(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey };
}

/** Sign a manifest; returns the base64 signature (64 bytes → 88 characters). */
export function signManifest(manifest: Manifest, privateKey: KeyObject): string {
  return sign(null, signedPayload(manifest), privateKey).toString('base64');
}

/** True when `signature` (base64) is a valid ed25519 signature of `manifest` by `publicKey`. */
export function verifyManifest(
  manifest: Manifest,
  signature: string,
  publicKey: KeyObject | string,
): boolean {
  const key = typeof publicKey === 'string' ? publicKeyFromBase64(publicKey) : publicKey;
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(null, signedPayload(manifest), key, sig);
  } catch {
    return false;
  }
}

/** Verify or throw SIGNATURE-INVALID naming the patch: for agents, before touching anything. */
export function assertManifestSignature(
  manifest: Manifest,
  signature: string,
  publicKey: KeyObject | string,
): void {
  if (!verifyManifest(manifest, signature, publicKey)) {
    throw new SutureError({
      code: 'SIGNATURE-INVALID',
      message: `the signature of patch ${manifest.name} (version ${manifest.version}) does not verify`,
      why: 'the manifest or its module hash was changed after the server signed it, or it was signed by another server',
      hint: 'do not load it; re-publish the patch on the server, or re-enroll if the server key changed',
    });
  }
}

/** The raw 32-byte public key, base64 (what the enrollment response carries). */
export function publicKeyToBase64(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new SutureError({ code: 'KEY-INVALID', message: 'not an ed25519 public key' });
  }
  return Buffer.from(jwk.x, 'base64url').toString('base64');
}

export function publicKeyFromBase64(b64: string): KeyObject {
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) {
    throw new SutureError({
      code: 'KEY-INVALID',
      message: `an ed25519 public key is 32 bytes, this one is ${raw.length}`,
      hint: 'use the serverPublicKey from the enrollment response',
    });
  }
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}

/** A short, stable fingerprint of a public key (first 16 hex digits of sha256 of the raw key). */
export function keyFingerprint(publicKey: KeyObject | string): string {
  const b64 = typeof publicKey === 'string' ? publicKey : publicKeyToBase64(publicKey);
  return createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').slice(0, 16);
}

export function privateKeyToPem(privateKey: KeyObject): string {
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function privateKeyFromPem(pem: string): SigningKeyPair {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new SutureError({
      code: 'KEY-INVALID',
      message: `cannot read the signing key: ${(e as Error).message}`,
      hint: 'the server data directory holds signing-key.pem (PKCS#8 PEM, ed25519); restore it from backup',
    });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SutureError({
      code: 'KEY-INVALID',
      message: `the signing key is ${privateKey.asymmetricKeyType}, not ed25519`,
    });
  }
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

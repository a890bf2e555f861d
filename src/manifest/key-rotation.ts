/*
 * Rotating the server's signing key: a new key is trusted only when the key it replaces says so.
 *
 * `suture key rotate` makes a new ed25519 key and an announcement: the new public key, the previous
 * one and the time, signed by the previous private key (a fixed domain prefix, so the signature can
 * never be taken for a manifest's or an answer's). The server keeps every announcement, oldest first,
 * and sends the chain with each check-in answer. An agent starts from the key it pinned at enrollment
 * (or adopted since) and walks the chain: an announcement whose `previous` is the key it trusts and
 * whose signature verifies with that key moves its trust to the new key; announcements older than its
 * key are skipped. Nothing else ever changes the key an agent trusts — not the enrollment answer of
 * another server, not a key the answer merely names. Leaf file (node:crypto).
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import { SutureError } from '../diagnostic.js';
import { canonicalJson } from './manifest.js';
import type { KeyAnnouncement } from './protocol.js';
import { publicKeyFromBase64, publicKeyToBase64, type SigningKeyPair } from './signature.js';

const DOMAIN = 'suture-key-rotation-v1\n';

export function announcementPayload(publicKey: string, previous: string, at: string): Buffer {
  return Buffer.from(DOMAIN + canonicalJson({ at, previous, publicKey }), 'utf8');
}

/** The announcement of `next` under `previous` (the key being replaced signs it). */
export function announceKey(next: KeyObject, previous: SigningKeyPair, at: string): KeyAnnouncement {
  const publicKey = publicKeyToBase64(next);
  const prev = publicKeyToBase64(previous.publicKey);
  return {
    publicKey,
    previous: prev,
    at,
    signature: sign(null, announcementPayload(publicKey, prev, at), previous.privateKey).toString('base64'),
  };
}

export function verifyAnnouncement(a: KeyAnnouncement): boolean {
  const sig = Buffer.from(a.signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(
      null,
      announcementPayload(a.publicKey, a.previous, a.at),
      publicKeyFromBase64(a.previous),
      sig,
    );
  } catch {
    return false;
  }
}

/**
 * Follow the chain from the trusted key: the key to trust now and the announcements that moved it.
 * An announcement that claims to come from the trusted key but does not verify is an error (someone
 * tries to move the agent's trust); one from a key never trusted here is ignored.
 */
export function followKeyChain(
  trusted: string,
  chain: readonly KeyAnnouncement[],
): { key: string; adopted: KeyAnnouncement[] } {
  let key = trusted;
  const adopted: KeyAnnouncement[] = [];
  for (const a of chain) {
    if (a.previous !== key) continue;
    if (!verifyAnnouncement(a)) {
      throw new SutureError({
        code: 'KEY-ANNOUNCEMENT-INVALID',
        message: `an announcement of a new server key (${a.publicKey.slice(0, 12)}…) does not verify with the key this machine trusts`,
        why: 'only the key being replaced can announce its successor; this one was not signed by it',
        hint: 'nothing was changed; check what sits between this machine and the server',
      });
    }
    key = a.publicKey;
    adopted.push(a);
  }
  return { key, adopted };
}

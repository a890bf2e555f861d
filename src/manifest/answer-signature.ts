/*
 * Signed check-in answers: the server signs what it tells a machine as a whole, not only each manifest.
 *
 * A manifest signature says "this module is a patch for this kernel"; it says nothing about whether the
 * patch is still wanted. The check-in answer carries that — which patches are offered, which revoked,
 * in what order — so it is signed too, in the spirit of TUF's timestamp and snapshot roles: the signed
 * bytes are a fixed domain prefix followed by the canonical JSON of every field of the answer except
 * `signature` itself and `keys` (the rotation announcements, which carry their own signatures). The
 * answer names the machine it is for, a per-machine sequence number that only grows and the time it
 * was issued, so a man in the middle can neither change it, nor hand one machine's answer to another,
 * nor replay an older one (the agent keeps the last sequence it accepted).
 *
 * The agent verifies the bytes it received, parsed as plain JSON, before the protocol's zod schema
 * adds any default: what is verified is exactly what the server signed. An answer with a `proof` was
 * signed in a batch (answer-batch.ts): the same signed bytes, one signature over many answers' tree.
 * Leaf file (node:crypto).
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import { proofOf, verifyBatchSigned } from './answer-batch.js';
import { canonicalJson, canonicalObject } from './manifest.js';
import { publicKeyFromBase64 } from './signature.js';

const DOMAIN = 'suture-checkin-v1\n';
/** fields of the answer the signature does not cover (a batch's proof leads to what it covers) */
const UNSIGNED = new Set(['signature', 'keys', 'proof']);

/** The exact bytes signed for a check-in answer given as a plain JSON value. */
export function checkinSignedBytes(answer: Record<string, unknown>): Buffer {
  const signed = Object.fromEntries(Object.entries(answer).filter(([k]) => !UNSIGNED.has(k)));
  return Buffer.from(DOMAIN + canonicalJson(signed), 'utf8');
}

/**
 * Server side: sign an answer given as canonical JSON parts (field → canonical JSON text), so that the
 * offer lists are canonicalised once per cache entry, not at every check-in. Returns the canonical
 * text of the signed fields and the signature.
 */
export function signCheckinParts(
  parts: Record<string, string>,
  privateKey: KeyObject,
): { text: string; signature: string } {
  const text = canonicalObject(parts);
  return { text, signature: sign(null, checkinPartsBytes(text), privateKey).toString('base64') };
}

/** The signed bytes of an answer whose signed fields are `text` (canonicalObject of its parts). */
export function checkinPartsBytes(text: string): Buffer {
  return Buffer.from(DOMAIN + text, 'utf8');
}

/**
 * True when `answer.signature` is the key's signature over the rest of `answer` (a plain JSON value),
 * or, with a `proof`, over the root of the batch that the proof leads to from the rest of `answer`.
 */
export function verifyCheckinAnswer(answer: Record<string, unknown>, publicKey: KeyObject | string): boolean {
  const signature = answer.signature;
  if (typeof signature !== 'string') return false;
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    const key = typeof publicKey === 'string' ? publicKeyFromBase64(publicKey) : publicKey;
    if (!('proof' in answer)) return verify(null, checkinSignedBytes(answer), key, sig);
    const proof = proofOf(answer.proof);
    return proof !== undefined && verifyBatchSigned(checkinSignedBytes(answer), proof, sig, key);
  } catch {
    return false;
  }
}

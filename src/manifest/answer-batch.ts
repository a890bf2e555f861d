/*
 * Batch-signed check-in answers: one ed25519 signature over a Merkle tree of many answers.
 *
 * Signing every answer costs the server one ed25519 signature per check-in, the largest single cost of
 * a check-in after the network. An agent that names `batch-signature` in `suture-answer-fields` accepts
 * instead an answer whose `signature` is the server key's signature over the root of a hash tree whose
 * leaves are the answers the server issued together, and whose `proof` is the way from its own leaf to
 * that root. The trust is the same: nobody without the key can make a root signature, and nobody can
 * find a second answer with the same way to the root (SHA-256, as in Certificate Transparency, RFC 6962):
 *   - leaf  = SHA-256(0x00 ‖ salt ‖ signed bytes), the signed bytes those of answer-signature.ts;
 *   - node  = SHA-256(0x01 ‖ left ‖ right); a level's odd last node moves up as it is;
 *   - signed: `suture-checkin-batch-v1\n` ‖ root, its own domain, so a root signature is never taken
 *     for a single answer's and the other way round.
 * The salt (16 random bytes per answer) keeps a machine from learning anything of the answers it was
 * batched with from the sibling hashes in its proof (they could otherwise be guessed and confirmed).
 * Leaf file (node:crypto).
 */
import { createHash, type KeyObject, randomBytes, sign, verify } from 'node:crypto';

const BATCH_DOMAIN = 'suture-checkin-batch-v1\n';
const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);
export const SALT_BYTES = 16;
/** deep enough for 2^32 answers in one batch: a longer way is refused unread */
export const MAX_PROOF_STEPS = 32;

/** One step from a node to its parent: the sibling's hash, and on which side it sits. */
export interface ProofStep {
  side: 'left' | 'right';
  /** base64 of the sibling's 32-byte hash */
  hash: string;
}

/** What an answer carries besides the root signature: its salt and its way to the root. */
export interface AnswerProof {
  /** base64 of the 16 random bytes hashed into this answer's leaf */
  salt: string;
  path: ProofStep[];
}

const sha256 = (...parts: Buffer[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

export const leafHash = (salt: Buffer, signedBytes: Buffer) => sha256(LEAF, salt, signedBytes);
const nodeHash = (left: Buffer, right: Buffer) => sha256(NODE, left, right);
const rootBytes = (root: Buffer) => Buffer.concat([Buffer.from(BATCH_DOMAIN, 'utf8'), root]);

/** The tree over `leaves`: its root, and each leaf's way up to it. */
export function merkleTree(leaves: readonly Buffer[]): { root: Buffer; paths: ProofStep[][] } {
  if (leaves.length === 0) throw new Error('a batch of no answers has no root');
  // levels[0] the leaves, each next level the pairs of the one below (an odd last node moves up)
  const levels: Buffer[][] = [[...leaves]];
  for (let level = levels[0] as Buffer[]; level.length > 1; ) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const right = level[i + 1];
      next.push(right ? nodeHash(level[i] as Buffer, right) : (level[i] as Buffer));
    }
    levels.push(next);
    level = next;
  }
  // a leaf's way up: at each level its node's sibling (index ^ 1), where it has one
  const paths = leaves.map((_, leaf) => {
    const path: ProofStep[] = [];
    let i = leaf;
    for (const level of levels.slice(0, -1)) {
      const sibling = level[i ^ 1];
      if (sibling) path.push({ side: i % 2 ? 'left' : 'right', hash: sibling.toString('base64') });
      i >>= 1;
    }
    return path;
  });
  return { root: levels.at(-1)?.[0] as Buffer, paths };
}

/**
 * Server side: sign a batch of answers (their signed bytes) with one signature. Returns the signature
 * (base64, the same for all) and each answer's proof, in order.
 */
export function signAnswerBatch(
  signedBytes: readonly Buffer[],
  privateKey: KeyObject,
): { signature: string; proofs: AnswerProof[] } {
  const salts = randomBytes(SALT_BYTES * signedBytes.length);
  const salt = (i: number) => salts.subarray(i * SALT_BYTES, (i + 1) * SALT_BYTES);
  const { root, paths } = merkleTree(signedBytes.map((b, i) => leafHash(salt(i), b)));
  const signature = sign(null, rootBytes(root), privateKey).toString('base64');
  return {
    signature,
    proofs: paths.map((path, i) => ({ salt: salt(i).toString('base64'), path })),
  };
}

/** The proof of a received answer (plain JSON), or undefined when it is not shaped as one. */
export function proofOf(value: unknown): AnswerProof | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const { salt, path } = value as Record<string, unknown>;
  if (typeof salt !== 'string' || !Array.isArray(path) || path.length > MAX_PROOF_STEPS) return undefined;
  const steps: ProofStep[] = [];
  for (const s of path) {
    const { side, hash } = (s ?? {}) as Record<string, unknown>;
    if ((side !== 'left' && side !== 'right') || typeof hash !== 'string') return undefined;
    steps.push({ side, hash });
  }
  return { salt, path: steps };
}

/** True when `signature` is the key's signature over the root that `proof` leads to from these bytes. */
export function verifyBatchSigned(
  signedBytes: Buffer,
  proof: AnswerProof,
  signature: Buffer,
  key: KeyObject,
): boolean {
  const salt = Buffer.from(proof.salt, 'base64');
  if (salt.length !== SALT_BYTES) return false;
  let node = leafHash(salt, signedBytes);
  for (const step of proof.path) {
    const sibling = Buffer.from(step.hash, 'base64');
    if (sibling.length !== 32) return false;
    node = step.side === 'left' ? nodeHash(sibling, node) : nodeHash(node, sibling);
  }
  return verify(null, rootBytes(node), key, signature);
}

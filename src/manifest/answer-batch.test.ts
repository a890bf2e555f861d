/*
 * Batch-signed check-in answers (answer-batch.ts): every answer of a batch verifies with its own proof
 * and the one signature, whatever the batch's size; nothing else does — not a changed answer, another
 * answer's proof, a changed salt, side or step, a single answer's signature with a proof, nor a root's
 * signature without one.
 */
import assert from 'node:assert/strict';
import { createHash, sign } from 'node:crypto';
import { test } from 'node:test';
import { type AnswerProof, leafHash, merkleTree, proofOf, signAnswerBatch } from './answer-batch.js';
import { checkinPartsBytes, checkinSignedBytes, verifyCheckinAnswer } from './answer-signature.js';
import { canonicalJson } from './manifest.js';
import { checkinResponseSchema } from './protocol.js';
import { generateSigningKey } from './signature.js';

const key = generateSigningKey();

function answerOf(i: number): Record<string, unknown> {
  return {
    machineId: `m-${i.toString(16).padStart(16, '0')}`,
    tier: 'stable',
    sequence: 10 + i,
    issuedAt: '2026-12-02T10:00:00.000Z',
    offered: [],
    revoked: [],
    nextCheckinSeconds: 600,
  };
}

/** n answers signed in one batch, as an agent receives them */
function batch(n: number): Array<Record<string, unknown>> {
  const answers = Array.from({ length: n }, (_, i) => answerOf(i));
  const bytes = answers.map((a) => checkinPartsBytes(canonicalJson(a)));
  const { signature, proofs } = signAnswerBatch(bytes, key.privateKey);
  return answers.map((a, i) => ({ ...a, signature, proof: proofs[i], keys: [] }));
}

const h = (...parts: Buffer[]) => {
  const x = createHash('sha256');
  for (const p of parts) x.update(p);
  return x.digest();
};

test('the tree: one leaf is its own root; an odd last node moves up as it is', () => {
  const [a, b, c] = ['a', 'b', 'c'].map((s) => h(Buffer.from(s))) as [Buffer, Buffer, Buffer];
  assert.deepEqual(merkleTree([a]), { root: a, paths: [[]] });
  const node = (l: Buffer, r: Buffer) => h(Buffer.from([1]), l, r);
  const t = merkleTree([a, b, c]);
  assert.deepEqual(t.root, node(node(a, b), c));
  assert.deepEqual(t.paths[2], [{ side: 'left', hash: node(a, b).toString('base64') }]);
  assert.deepEqual(t.paths[0], [
    { side: 'right', hash: b.toString('base64') },
    { side: 'right', hash: c.toString('base64') },
  ]);
  // a leaf is hashed with its own prefix and salt: never equal to a node over the same bytes
  assert.notDeepEqual(leafHash(Buffer.alloc(16), Buffer.concat([a, b])), node(a, b));
});

test('every answer of a batch of any size verifies with its proof and the one signature', () => {
  for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 16, 33]) {
    const answers = batch(n);
    assert.equal(new Set(answers.map((a) => a.signature)).size, 1, 'one signature per batch');
    for (const [i, a] of answers.entries()) {
      assert.equal(verifyCheckinAnswer(a, key.publicKey), true, `answer ${i} of ${n}`);
      assert.equal(checkinResponseSchema.safeParse(a).success, true, 'the wire schema takes the proof');
      assert.ok((a.proof as AnswerProof).path.length <= Math.ceil(Math.log2(n)), 'a short way');
    }
  }
});

test('nothing else verifies: a changed answer, a foreign proof, a changed salt, side or step', () => {
  const [a, b, c] = batch(3) as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
  const proof = a.proof as AnswerProof;
  const no = (x: Record<string, unknown>, why: string) =>
    assert.equal(verifyCheckinAnswer(x, key.publicKey), false, why);
  no({ ...a, sequence: 99 }, 'a changed field');
  no({ ...a, machineId: b.machineId }, "another machine's id");
  no({ ...a, proof: b.proof }, "another answer's proof");
  no({ ...a, proof: c.proof }, "the odd answer's proof");
  no({ ...a, proof: { ...proof, salt: Buffer.alloc(16).toString('base64') } }, 'another salt');
  const flipped = proof.path.map((s) => ({ ...s, side: s.side === 'left' ? 'right' : 'left' }));
  no({ ...a, proof: { ...proof, path: flipped } }, 'sides flipped');
  no({ ...a, proof: { ...proof, path: proof.path.slice(1) } }, 'a step dropped');
  no({ ...a, proof: { ...proof, path: [...proof.path, proof.path[0]] } }, 'a step added');
  no({ ...a, proof: { salt: proof.salt } }, 'a proof without a way');
  no({ ...a, proof: 'x' }, 'a proof that is not one');
  no({ ...a, proof: undefined }, 'a proof field that is empty');
  assert.equal(proofOf({ salt: 's', path: [{ side: 'up', hash: 'h' }] }), undefined);
  const { proof: _, ...alone } = a;
  no(alone, "the root's signature is no single answer's");
  assert.equal(verifyCheckinAnswer(a, generateSigningKey().publicKey), false, 'another key');
});

test("a single answer's signature does not pass for a batch's root", () => {
  const a = answerOf(1);
  const single = sign(null, checkinSignedBytes(a), key.privateKey).toString('base64');
  assert.equal(verifyCheckinAnswer({ ...a, signature: single }, key.publicKey), true);
  const asBatch = { ...a, signature: single, proof: { salt: Buffer.alloc(16).toString('base64'), path: [] } };
  assert.equal(verifyCheckinAnswer(asBatch, key.publicKey), false);
});

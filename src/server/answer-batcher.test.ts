/*
 * Check-in answers signed in batches (answer-batcher.ts): the answers of one turn share one signature,
 * the next turn's get another; through the real server, every answer to an agent that asks verifies
 * with its own proof and the key the machine pinned, and an agent that does not ask for
 * `batch-signature` gets an answer signed alone, as before.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkinPartsBytes, verifyCheckinAnswer } from '../manifest/answer-signature.js';
import {
  AGENT_ANSWER_FIELDS,
  ANSWER_FIELDS_HEADER,
  checkinResponseSchema,
  KERNEL_SUPPORT_FIELD,
  machineApi,
} from '../manifest/protocol.js';
import { generateSigningKey } from '../manifest/signature.js';
import { AdminClient } from './admin-client.js';
import { AnswerBatcher } from './answer-batcher.js';
import { type RunningServer, startServer } from './server.js';
import { FakeMachine } from './testing/fleet-fixture.js';

let dir: string;
let server: RunningServer;
let machines: FakeMachine[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'suture-batch-'));
  server = await startServer({ dataDir: join(dir, 'data') });
  const admin = new AdminClient({ server: server.url, adminToken: server.createdAdminToken ?? '' });
  const { token } = await admin.createToken({ tier: 'stable', maxUses: 100 });
  machines = Array.from({ length: 12 }, (_, i) => new FakeMachine(server.url, `host-${i}`));
  for (const m of machines) await m.enroll(token);
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function rawCheckin(m: FakeMachine, fields?: string): Promise<Record<string, unknown>> {
  const res = await fetch(server.url + machineApi.checkin, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${m.enrollment?.credential ?? ''}`,
      'content-type': 'application/json',
      ...(fields ? { [ANSWER_FIELDS_HEADER]: fields } : {}),
    },
    body: JSON.stringify({ kernel: m.kernel, hostname: m.hostname, agentVersion: 'fake-1', patches: [] }),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

test('the answers of one turn share a signature, the next turn has its own; each verifies', async () => {
  let key = generateSigningKey();
  let keysJson = '[]';
  const batcher = new AnswerBatcher(() => ({ privateKey: key.privateKey, keysJson }));
  const answer = (i: number) => ({ machineId: `m-${i}`, sequence: i + 1 });
  const text = (i: number) => JSON.stringify(answer(i));
  const turn = (from: number) =>
    Promise.all([0, 1, 2, 3, 4].map((i) => batcher.sign(checkinPartsBytes(text(from + i)))));
  const first = await turn(0);
  const publicKey = key.publicKey;
  // a rotation between the turns: the next batch is signed with the new key, and carries its chain
  key = generateSigningKey();
  keysJson = '["announced"]';
  const second = await turn(5);
  assert.deepEqual(
    [...first, ...second].map((s) => s.keysJson),
    [...first.map(() => '[]'), ...second.map(() => '["announced"]')],
    'each answer carries the chain as it was when its batch was signed',
  );
  assert.equal(new Set(first.map((s) => s.signature)).size, 1, 'one signature for a turn');
  assert.notEqual(first[0]?.signature, second[0]?.signature);
  for (const [i, s] of first.entries()) {
    const wire = { ...answer(i), signature: s.signature, proof: s.proof };
    assert.equal(verifyCheckinAnswer(wire, publicKey), true, `answer ${i}`);
  }
  for (const [i, s] of second.entries()) {
    const wire = { ...answer(5 + i), signature: s.signature, proof: s.proof };
    assert.equal(verifyCheckinAnswer(wire, key.publicKey), true, `answer ${5 + i}`);
  }
});

test('through the server, each batch-signed answer verifies with its proof and the pinned key', async () => {
  const answers = await Promise.all(machines.map((m) => rawCheckin(m, AGENT_ANSWER_FIELDS)));
  for (const [i, a] of answers.entries()) {
    const m = machines[i] as FakeMachine;
    assert.equal(a.machineId, m.id);
    assert.ok(a.proof, 'a proof');
    assert.equal(checkinResponseSchema.safeParse(a).success, true);
    assert.equal(verifyCheckinAnswer(a, m.enrollment?.serverPublicKey ?? ''), true, `answer ${i}`);
  }
  // one machine's answer with another's proof is refused, though both are under one signature
  const [a, b] = answers as [Record<string, unknown>, Record<string, unknown>];
  if (a.signature === b.signature) {
    assert.equal(
      verifyCheckinAnswer({ ...a, proof: b.proof }, machines[0]?.enrollment?.serverPublicKey ?? ''),
      false,
    );
  }
});

test('an agent that does not ask for batch signatures gets its answer signed alone', async () => {
  const m = machines[0] as FakeMachine;
  for (const fields of [undefined, KERNEL_SUPPORT_FIELD]) {
    const a = await rawCheckin(m, fields);
    assert.equal('proof' in a, false);
    assert.equal(verifyCheckinAnswer(a, m.enrollment?.serverPublicKey ?? ''), true);
    const before = checkinResponseSchema.omit({ proof: true }).strict();
    assert.equal(before.safeParse(a).success, true, 'the schema from before the proof accepts it');
  }
});

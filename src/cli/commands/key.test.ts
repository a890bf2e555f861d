/*
 * `suture key` and `suture key rotate`, parsed by commander as the CLI does, against a real server on
 * loopback: the rotation is announced under the old key, audited, and carried by the next check-in
 * answers, which are then signed with the new key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verifyCheckinAnswer } from '../../manifest/answer-signature.js';
import { followKeyChain } from '../../manifest/key-rotation.js';
import { FakeMachine } from '../../server/testing/fleet-fixture.js';
import { AdminCliRig } from '../testing/admin-cli.js';
import { register as registerKey } from './key.js';
import { register as registerToken } from './token.js';

const rig = new AdminCliRig('cli-key', [registerKey, registerToken]);
const suture = rig.suture;

test('suture key rotate: a new key announced under the old one, audited, followed by the answers', async () => {
  const before = JSON.parse(await suture('key', '--json')) as { publicKey: string; custody: string };
  assert.equal(before.publicKey, rig.server.publicKey);
  assert.equal(before.custody, 'the database');
  const m = new FakeMachine(rig.server.url, 'key-host');
  await m.enroll((await suture('token', 'create', '--tier', 'canary')).trim());
  assert.deepEqual((await m.checkin()).keys, []);

  const r = JSON.parse(await suture('key', 'rotate', '--json')) as { previous: string; publicKey: string };
  assert.equal(r.previous, before.publicKey);
  assert.equal(rig.server.publicKey, r.publicKey);
  assert.match(await suture('key'), /kept in the database; 1 rotation\(s\)/);

  const answer = await m.checkin();
  assert.equal(answer.keys.length, 1);
  const raw = answer as unknown as Record<string, unknown>;
  assert.equal(verifyCheckinAnswer(raw, r.publicKey), true, 'answers are signed with the new key');
  assert.equal(verifyCheckinAnswer(raw, before.publicKey), false, 'and no longer with the old one');
  assert.equal(followKeyChain(before.publicKey, answer.keys).key, r.publicKey, 'announced by the old key');
  const audit = await rig.server.store.listAudit();
  assert.equal(audit.filter((a) => a.action === 'key-rotate').length, 1);
});

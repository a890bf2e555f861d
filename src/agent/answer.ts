/*
 * Accepting a check-in answer: only a fresh answer, for this machine, signed by the key it trusts.
 *
 * Before the agent acts on anything a check-in answer says (offers, revocations, the tier), it checks:
 *   1. the key: it starts from the key it trusts (pinned at enrollment, or adopted since) and follows
 *      the answer's chain of key announcements (manifest/key-rotation.ts) — the only way that key moves;
 *   2. the signature over the whole answer with that key (manifest/answer-signature.ts), on the bytes
 *      received, so a changed offer, a hidden revocation or a relabelled patch is refused as a whole;
 *   3. the machine id: an answer for another machine is refused;
 *   4. freshness: the sequence number must be above the last one accepted (persisted in the state), so a
 *      replayed answer — one that offered a patch since revoked — is refused; and the answer must not be
 *      older than MAX_ANSWER_AGE_SECONDS by this machine's clock, so one held back is refused too.
 * A refused answer is a failed check-in (status says why, the daemon backs off); nothing is loaded or
 * unloaded, and the last accepted answer stays the reference.
 */
import { SutureError } from '../diagnostic.js';
import { verifyCheckinAnswer } from '../manifest/answer-signature.js';
import { followKeyChain } from '../manifest/key-rotation.js';
import type { CheckinResponse, KeyAnnouncement } from '../manifest/protocol.js';
import { keyFingerprint } from '../manifest/signature.js';
import type { Enrollment, LastAnswer } from './state.js';

/** An answer issued longer ago than this (by the agent's clock) is refused as held back. */
export const MAX_ANSWER_AGE_SECONDS = 24 * 3600;

export interface AcceptedAnswer {
  answer: CheckinResponse;
  /** the key the answer verified with (the trusted key, or one it announced) */
  key: string;
  /** announcements that moved the trust, oldest first */
  adopted: KeyAnnouncement[];
}

const CHECK_PATH =
  'nothing was loaded or unloaded; check what sits between this machine and the server (use HTTPS), or the server itself';

function refuse(code: string, message: string, why: string, hint = CHECK_PATH): never {
  throw new SutureError({ code, message, why, hint });
}

export function acceptAnswer(
  answer: CheckinResponse,
  raw: Record<string, unknown>,
  enrollment: Enrollment,
  last: LastAnswer | null,
  now: Date,
): AcceptedAnswer {
  const { key, adopted } = followKeyChain(enrollment.serverPublicKey, answer.keys);
  if (!verifyCheckinAnswer(raw, key)) {
    refuse(
      'AGENT-ANSWER-SIGNATURE',
      `the check-in answer is not signed by the server key this machine trusts (${keyFingerprint(key)})`,
      'the answer was changed on its way, or it comes from a server without the signing key',
    );
  }
  if (answer.machineId !== enrollment.machineId) {
    refuse(
      'AGENT-ANSWER-MACHINE',
      `the check-in answer is for machine ${answer.machineId}, this machine is ${enrollment.machineId}`,
      "another machine's answer was handed to this one",
    );
  }
  if (last && answer.sequence <= last.sequence) {
    refuse(
      'AGENT-ANSWER-REPLAYED',
      `the check-in answer has sequence ${answer.sequence} (issued ${answer.issuedAt}); this machine already accepted ${last.sequence} (issued ${last.issuedAt})`,
      'an answer not newer than the last one accepted is a replay: what it offers may have been revoked since',
      `${CHECK_PATH}; if the server's database was restored from a backup, enroll this machine again`,
    );
  }
  const age = (now.getTime() - Date.parse(answer.issuedAt)) / 1000;
  if (age > MAX_ANSWER_AGE_SECONDS) {
    refuse(
      'AGENT-ANSWER-STALE',
      `the check-in answer was issued ${answer.issuedAt}, ${Math.round(age / 3600)} h ago (at most ${MAX_ANSWER_AGE_SECONDS / 3600} h are accepted)`,
      "an answer held back that long may hide a revocation; if this machine's clock is wrong, set it right",
    );
  }
  return { answer, key, adopted };
}

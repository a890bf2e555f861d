/*
 * Check-in answers signed in batches (manifest/answer-batch.ts): the answers that are ready in one turn
 * of the event loop — under load, those of one database batch — get one ed25519 signature between them
 * and a proof each. An answer waits for the end of its turn (`setImmediate`), not for other check-ins;
 * a lone answer is a batch of one. Only for agents that ask for it (`batch-signature`, machine-api.ts).
 */
import type { KeyObject } from 'node:crypto';
import { type AnswerProof, signAnswerBatch } from '../manifest/answer-batch.js';

interface Waiting {
  bytes: Buffer;
  resolve: (signed: { signature: string; proof: AnswerProof }) => void;
  reject: (e: unknown) => void;
}

export class AnswerBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  /** `key()`: the key to sign with when the batch is signed (a rotation applies from the next batch) */
  constructor(private readonly key: () => KeyObject) {}

  /** The signature over the batch these signed bytes join, and their proof. */
  sign(bytes: Buffer): Promise<{ signature: string; proof: AnswerProof }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ bytes, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.scheduled = false;
    try {
      const { signature, proofs } = signAnswerBatch(
        batch.map((w) => w.bytes),
        this.key(),
      );
      for (const [i, w] of batch.entries()) w.resolve({ signature, proof: proofs[i] as AnswerProof });
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}

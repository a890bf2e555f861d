/*
 * Check-in answers signed in batches (manifest/answer-batch.ts): the answers that are ready in one turn
 * of the event loop — under load, those of one database batch — get one ed25519 signature between them
 * and a proof each. An answer waits for the end of its turn (`setImmediate`), not for other check-ins;
 * a lone answer is a batch of one. Only for agents that ask for it (`batch-signature`, machine-api.ts).
 */
import type { KeyObject } from 'node:crypto';
import { type AnswerProof, signAnswerBatch } from '../manifest/answer-batch.js';

/** the key a batch is signed with, and the rotation chain that leads an agent to it (as JSON text) */
export interface BatchKey {
  privateKey: KeyObject;
  keysJson: string;
}

/** a batch's signature, the answer's proof, and the chain to send with them */
export interface BatchSigned {
  signature: string;
  proof: AnswerProof;
  keysJson: string;
}

interface Waiting {
  bytes: Buffer;
  resolve: (signed: BatchSigned) => void;
  reject: (e: unknown) => void;
}

export class AnswerBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  /**
   * `key()`: the key to sign with when the batch is signed, read with its chain at that moment, so an
   * answer never carries a chain that leads past the key that signed it (a rotation applies from the
   * next batch)
   */
  constructor(private readonly key: () => BatchKey) {}

  /** The signature over the batch these signed bytes join, their proof, and the chain to send. */
  sign(bytes: Buffer): Promise<BatchSigned> {
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
      const { privateKey, keysJson } = this.key();
      const { signature, proofs } = signAnswerBatch(
        batch.map((w) => w.bytes),
        privateKey,
      );
      for (const [i, w] of batch.entries())
        w.resolve({ signature, proof: proofs[i] as AnswerProof, keysJson });
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}

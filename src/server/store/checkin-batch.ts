/*
 * What a check-in carries through the store's batch: the machine it authenticated as, and the pending
 * check-in waiting for its batch to commit (both engines' flush functions take these).
 */
import type { CheckinRequest } from '../../manifest/protocol.js';

export interface AuthenticatedMachine {
  id: string;
  tier: string;
  kernelRelease: string;
  buildId: string;
}

/** A machine that just checked in: `sequence` is its check-in count, this one included (signed answers). */
export interface CheckedInMachine extends AuthenticatedMachine {
  sequence: number;
}

export interface PendingCheckin {
  credentialHash: string;
  req: CheckinRequest;
  now: string;
  resolve: (m: CheckedInMachine | undefined) => void;
  reject: (e: unknown) => void;
}

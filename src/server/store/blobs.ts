/*
 * Module bytes by sha256 (`artifact_blobs`): the copy every instance on one database can reach, under
 * each instance's local cache (artifacts.ts).
 */
import type { Db } from '../db.js';

export interface BlobStore {
  /** Keep a verified module's bytes under its sha256 (a no-op when present). */
  putBlob(sha256: string, data: Buffer, now: string): Promise<void>;
  blobSize(sha256: string): Promise<number | undefined>;
  blobData(sha256: string): Promise<Buffer | undefined>;
}

export function sqlBlobs(db: Db): BlobStore {
  return {
    async putBlob(sha256: string, data: Buffer, now: string): Promise<void> {
      await db.run(
        'INSERT INTO artifact_blobs (sha256, size, data, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING',
        [sha256, data.length, data, now],
      );
    },

    async blobSize(sha256: string): Promise<number | undefined> {
      const r = await db.get<{ size: number | string }>('SELECT size FROM artifact_blobs WHERE sha256 = ?', [
        sha256,
      ]);
      return r ? Number(r.size) : undefined;
    },

    async blobData(sha256: string): Promise<Buffer | undefined> {
      const r = await db.get<{ data: Buffer }>('SELECT data FROM artifact_blobs WHERE sha256 = ?', [sha256]);
      return r?.data;
    },
  };
}

/*
 * Admin access: dashboard sessions and the admin token.
 *
 * A dashboard session is a random id handed to the browser in a cookie; the database keeps only its
 * sha256, who opened it and when it expires, so every instance on one database accepts it and logging
 * out (a DELETE) ends it everywhere. The admin token itself is a setting (`admin_token_hash`, sha256
 * only); rotating it replaces the hash and ends every session in one transaction, audited.
 */
import type { Db } from '../db.js';
import { type AuditEntry, insertAudit } from './audit.js';

export interface AdminAccessStore {
  openSession(s: { idHash: string; actor: string; now: string; expiresAt: string }): Promise<void>;
  /** true while the session exists and has not expired */
  sessionValid(idHash: string, now: string): Promise<boolean>;
  closeSession(idHash: string): Promise<void>;
  /** Replace the admin token's hash and end every dashboard session; false when `oldHash` is stale. */
  rotateAdminToken(oldHash: string, newHash: string, audit: AuditEntry): Promise<boolean>;
}

export function sqlAdminAccess(db: Db): AdminAccessStore {
  return {
    async openSession(s) {
      await db.tx(async (x) => {
        // expired sessions go when a new one is opened: the table holds only live ones (plus a few)
        await x.run('DELETE FROM sessions WHERE expires_at <= ?', [s.now]);
        await x.run('INSERT INTO sessions (id_hash, actor, created_at, expires_at) VALUES (?, ?, ?, ?)', [
          s.idHash,
          s.actor,
          s.now,
          s.expiresAt,
        ]);
      });
    },

    async sessionValid(idHash, now) {
      const r = await db.get<{ id_hash: string }>(
        'SELECT id_hash FROM sessions WHERE id_hash = ? AND expires_at > ?',
        [idHash, now],
      );
      return r !== undefined;
    },

    async closeSession(idHash) {
      await db.run('DELETE FROM sessions WHERE id_hash = ?', [idHash]);
    },

    rotateAdminToken(oldHash, newHash, audit) {
      return db.tx(async (x) => {
        const n = await x.run("UPDATE settings SET value = ? WHERE key = 'admin_token_hash' AND value = ?", [
          newHash,
          oldHash,
        ]);
        if (n === 0) return false;
        await x.run('DELETE FROM sessions');
        await insertAudit(x, audit);
        return true;
      });
    },
  };
}

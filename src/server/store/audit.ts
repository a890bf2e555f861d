/*
 * The audit log: who published, promoted, revoked, moved or created what, and when. Entries are
 * written inside the transaction of the change they describe (`insertAudit`), so a change and its
 * entry commit together or not at all.
 */
import type { Db, Sql } from '../db.js';

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export interface AuditStore {
  /** newest first */
  listAudit(limit?: number): Promise<AuditEntry[]>;
}

export async function insertAudit(t: Sql, a: AuditEntry): Promise<void> {
  await t.run('INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)', [
    a.at,
    a.actor,
    a.action,
    a.target,
    JSON.stringify(a.detail),
  ]);
}

export function sqlAudit(db: Db): AuditStore {
  return {
    async listAudit(limit = 200): Promise<AuditEntry[]> {
      const rows = await db.all<{
        at: string;
        actor: string;
        action: string;
        target: string;
        detail: string;
      }>('SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?', [limit]);
      return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
    },
  };
}

/*
 * Enrollment tokens and enrollment: an operator creates a token for a tier (optionally limited in uses
 * and time); a machine presents it once and receives its own credential. Only the token's sha256 is
 * stored. Enrollment is one transaction: the use is taken with a conditional increment, so concurrent
 * enrollments on PostgreSQL cannot overshoot `max_uses`.
 */
import type { Db } from '../db.js';
import { type AuditEntry, insertAudit } from './audit.js';

export interface TokenRecord {
  id: string;
  tier: string;
  note: string;
  maxUses?: number;
  uses: number;
  expiresAt?: string;
  createdAt: string;
  revokedAt?: string;
}

export interface EnrollInput {
  tokenHash: string;
  machineId: string;
  credentialHash: string;
  hostname: string;
  kernelRelease: string;
  buildId: string;
  agentVersion: string;
  now: string;
}

export type EnrollOutcome =
  | { ok: true; tier: string }
  | { ok: false; reason: 'unknown' | 'revoked' | 'expired' | 'exhausted' };

export interface EnrollmentStore {
  createToken(t: TokenRecord & { hash: string }, audit: AuditEntry): Promise<void>;
  listTokens(): Promise<TokenRecord[]>;
  enroll(e: EnrollInput): Promise<EnrollOutcome>;
  /** From now on the token enrolls nobody; machines it enrolled keep their credentials. */
  revokeToken(id: string, audit: AuditEntry, now: string): Promise<'ok' | 'unknown' | 'unchanged'>;
}

export function sqlEnrollment(db: Db): EnrollmentStore {
  return {
    async createToken(t: TokenRecord & { hash: string }, audit: AuditEntry): Promise<void> {
      await db.tx(async (x) => {
        await x.run(
          `INSERT INTO tokens (id, hash, tier, note, max_uses, uses, expires_at, created_at)
           VALUES (?, ?, ?, ?, ?, 0, ?, ?)`,
          [t.id, t.hash, t.tier, t.note, t.maxUses ?? null, t.expiresAt ?? null, t.createdAt],
        );
        await insertAudit(x, audit);
      });
    },

    async listTokens(): Promise<TokenRecord[]> {
      const rows = await db.all<{
        id: string;
        tier: string;
        note: string;
        max_uses: number | null;
        uses: number | string;
        expires_at: string | null;
        created_at: string;
        revoked_at: string | null;
      }>(
        'SELECT id, tier, note, max_uses, uses, expires_at, created_at, revoked_at FROM tokens ORDER BY created_at, id',
      );
      return rows.map((r) => {
        const t: TokenRecord = {
          id: r.id,
          tier: r.tier,
          note: r.note,
          uses: Number(r.uses),
          createdAt: r.created_at,
        };
        if (r.max_uses !== null) t.maxUses = Number(r.max_uses);
        if (r.expires_at) t.expiresAt = r.expires_at;
        if (r.revoked_at) t.revokedAt = r.revoked_at;
        return t;
      });
    },

    enroll(e: EnrollInput): Promise<EnrollOutcome> {
      return db.tx(async (x) => {
        const t = await x.get<{
          id: string;
          tier: string;
          max_uses: number | null;
          uses: number | string;
          expires_at: string | null;
          revoked_at: string | null;
        }>('SELECT id, tier, max_uses, uses, expires_at, revoked_at FROM tokens WHERE hash = ?', [
          e.tokenHash,
        ]);
        if (!t) return { ok: false, reason: 'unknown' } as const;
        if (t.revoked_at) return { ok: false, reason: 'revoked' } as const;
        if (t.expires_at && t.expires_at <= e.now) return { ok: false, reason: 'expired' } as const;
        if (t.max_uses !== null && Number(t.uses) >= Number(t.max_uses))
          return { ok: false, reason: 'exhausted' } as const;
        // conditional increment: concurrent enrollments (PostgreSQL, READ COMMITTED) cannot overshoot max_uses
        const taken = await x.run(
          'UPDATE tokens SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)',
          [t.id],
        );
        if (taken === 0) return { ok: false, reason: 'exhausted' } as const;
        await x.run(
          `INSERT INTO machines (id, credential_hash, tier, hostname, kernel_release, build_id, agent_version, token_id,
             enrolled_at, checkins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
          [
            e.machineId,
            e.credentialHash,
            t.tier,
            e.hostname,
            e.kernelRelease,
            e.buildId,
            e.agentVersion,
            t.id,
            e.now,
          ],
        );
        return { ok: true, tier: t.tier } as const;
      });
    },

    revokeToken(id, audit, now) {
      return db.tx(async (x) => {
        const t = await x.get<{ revoked_at: string | null }>('SELECT revoked_at FROM tokens WHERE id = ?', [
          id,
        ]);
        if (!t) return 'unknown' as const;
        if (t.revoked_at) return 'unchanged' as const;
        await x.run('UPDATE tokens SET revoked_at = ? WHERE id = ?', [now, id]);
        await insertAudit(x, audit);
        return 'ok' as const;
      });
    },
  };
}

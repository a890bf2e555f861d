/*
 * Patches and their tiers: publish (patch, tiers and audit entry in one transaction), promote (add a
 * tier), revoke (out of every offer, into every revoke list), and the lists a check-in is answered
 * from — non-revoked patches for an exact kernel (release and vmlinux build id) and tier, and the
 * revoked ones that tier could have received, and every kernel that has a patch (kernel-support.ts).
 * A publish or promote may roll the tier out in waves (rollouts.ts); each offer carries how far its
 * tier's rollout reaches.
 */
import type { Manifest } from '../../manifest/manifest.js';
import type { Db } from '../db.js';
import type { PatchedKernel } from '../kernel-support.js';
import { type AuditEntry, insertAudit } from './audit.js';
import { planWaves, reachOf, type WavePlan } from './rollouts.js';

export interface PatchRecord {
  id: string;
  name: string;
  version: string;
  kernelRelease: string;
  buildId: string;
  moduleName: string;
  manifest: Manifest;
  signature: string;
  sha256: string;
  size: number;
  cves: string[];
  description: string;
  publishedAt: string;
  revokedAt?: string;
  revokeReason?: string;
  tiers: string[];
}

/** An offer with the share of the tier's buckets it reaches (rollouts.ts: waves open, 0 when halted). */
export interface OfferRecord extends PatchRecord {
  reach: number;
}

export type ChangeOutcome = 'ok' | 'unknown' | 'revoked' | 'unchanged';

export interface PatchStore {
  /** Non-revoked patches for this exact kernel whose tiers include `tier`, newest first. */
  offers(release: string, buildId: string, tier: string): Promise<OfferRecord[]>;
  /** Revoked patches of this exact kernel the machine's tier could have received. */
  revokedFor(release: string, buildId: string, tier: string): Promise<PatchRecord[]>;
  /** Every kernel (release, build id) with a non-revoked patch in any tier, newest publish first. */
  patchedKernels(): Promise<PatchedKernel[]>;
  /** `plan`: roll the tier out in waves (rollouts.ts) instead of all at once */
  publish(p: PatchRecord, audit: AuditEntry, plan?: WavePlan): Promise<'ok' | 'exists'>;
  promote(
    patchId: string,
    tier: string,
    audit: AuditEntry,
    now: string,
    plan?: WavePlan,
  ): Promise<ChangeOutcome>;
  revoke(patchId: string, reason: string, audit: AuditEntry, now: string): Promise<ChangeOutcome>;
  getPatch(id: string): Promise<PatchRecord | undefined>;
  listPatches(): Promise<PatchRecord[]>;
}

interface PatchRow {
  id: string;
  name: string;
  version: string;
  kernel_release: string;
  build_id: string;
  module_name: string;
  manifest: string;
  signature: string;
  sha256: string;
  size: number | string;
  cves: string;
  description: string;
  published_at: string;
  revoked_at: string | null;
  revoke_reason: string | null;
  tiers: string | null;
}

const PATCH_COLUMNS = `p.id, p.name, p.version, p.kernel_release, p.build_id, p.module_name, p.manifest, p.signature,
  p.sha256, p.size, p.cves, p.description, p.published_at, p.revoked_at, p.revoke_reason`;

function toPatch(r: PatchRow, tiers?: string[]): PatchRecord {
  const p: PatchRecord = {
    id: r.id,
    name: r.name,
    version: r.version,
    kernelRelease: r.kernel_release,
    buildId: r.build_id,
    moduleName: r.module_name,
    manifest: JSON.parse(r.manifest) as Manifest,
    signature: r.signature,
    sha256: r.sha256,
    size: Number(r.size),
    cves: JSON.parse(r.cves) as string[],
    description: r.description,
    publishedAt: r.published_at,
    tiers: tiers ?? (r.tiers ? r.tiers.split(',').sort() : []),
  };
  if (r.revoked_at) p.revokedAt = r.revoked_at;
  if (r.revoke_reason) p.revokeReason = r.revoke_reason;
  return p;
}

/** string_agg vs group_concat: the one place the dialects differ in a query */
function tiersAgg(kind: Db['kind']): string {
  return kind === 'sqlite'
    ? `(SELECT group_concat(tier, ',') FROM patch_tiers t WHERE t.patch_id = p.id)`
    : `(SELECT string_agg(tier, ',') FROM patch_tiers t WHERE t.patch_id = p.id)`;
}

export function sqlPatches(db: Db): PatchStore {
  return {
    async offers(release: string, buildId: string, tier: string): Promise<OfferRecord[]> {
      type Row = PatchRow & {
        waves: string | null;
        waves_open: number | string | null;
        halted_at: string | null;
      };
      const rows = await db.all<Row>(
        `SELECT ${PATCH_COLUMNS}, ${tiersAgg(db.kind)} AS tiers, pt.waves, pt.waves_open, pt.halted_at
         FROM patches p JOIN patch_tiers pt ON pt.patch_id = p.id AND pt.tier = ?
         WHERE p.kernel_release = ? AND p.build_id = ? AND p.revoked_at IS NULL
         ORDER BY p.published_at DESC, p.id DESC`,
        [tier, release, buildId],
      );
      return rows.map((r) => ({ ...toPatch(r), reach: reachOf(r) }));
    },

    async revokedFor(release: string, buildId: string, tier: string): Promise<PatchRecord[]> {
      const rows = await db.all<PatchRow>(
        `SELECT ${PATCH_COLUMNS}, ${tiersAgg(db.kind)} AS tiers FROM patches p
         WHERE p.kernel_release = ? AND p.build_id = ? AND p.revoked_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM patch_tiers t WHERE t.patch_id = p.id AND t.tier = ?)
         ORDER BY p.published_at DESC, p.id DESC`,
        [release, buildId, tier],
      );
      return rows.map((r) => toPatch(r));
    },

    async patchedKernels(): Promise<PatchedKernel[]> {
      const rows = await db.all<{ kernel_release: string; build_id: string; newest: string }>(
        `SELECT kernel_release, build_id, MAX(published_at) AS newest FROM patches
         WHERE revoked_at IS NULL GROUP BY kernel_release, build_id
         ORDER BY newest DESC, kernel_release DESC, build_id DESC`,
      );
      return rows.map((r) => ({ release: r.kernel_release, buildId: r.build_id, newest: r.newest }));
    },

    publish(p: PatchRecord, audit: AuditEntry, plan?: WavePlan): Promise<'ok' | 'exists'> {
      return db.tx(async (x) => {
        const found = await x.get<{ id: string }>('SELECT id FROM patches WHERE id = ?', [p.id]);
        if (found) return 'exists' as const;
        await x.run(
          `INSERT INTO patches (id, name, version, kernel_release, build_id, module_name, manifest, signature, sha256,
             size, cves, description, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            p.id,
            p.name,
            p.version,
            p.kernelRelease,
            p.buildId,
            p.moduleName,
            JSON.stringify(p.manifest),
            p.signature,
            p.sha256,
            p.size,
            JSON.stringify(p.cves),
            p.description,
            p.publishedAt,
          ],
        );
        for (const tier of p.tiers) {
          await x.run('INSERT INTO patch_tiers (patch_id, tier, added_at) VALUES (?, ?, ?)', [
            p.id,
            tier,
            p.publishedAt,
          ]);
          if (plan) await planWaves(x, p.id, tier, plan, p.publishedAt);
        }
        await insertAudit(x, audit);
        return 'ok' as const;
      });
    },

    promote(
      patchId: string,
      tier: string,
      audit: AuditEntry,
      now: string,
      plan?: WavePlan,
    ): Promise<ChangeOutcome> {
      return db.tx(async (x) => {
        const p = await x.get<{ revoked_at: string | null }>('SELECT revoked_at FROM patches WHERE id = ?', [
          patchId,
        ]);
        if (!p) return 'unknown' as const;
        if (p.revoked_at) return 'revoked' as const;
        const n = await x.run(
          'INSERT INTO patch_tiers (patch_id, tier, added_at) VALUES (?, ?, ?) ON CONFLICT (patch_id, tier) DO NOTHING',
          [patchId, tier, now],
        );
        if (n === 0) return 'unchanged' as const;
        if (plan) await planWaves(x, patchId, tier, plan, now);
        await insertAudit(x, audit);
        return 'ok' as const;
      });
    },

    revoke(patchId: string, reason: string, audit: AuditEntry, now: string): Promise<ChangeOutcome> {
      return db.tx(async (x) => {
        const p = await x.get<{ revoked_at: string | null }>('SELECT revoked_at FROM patches WHERE id = ?', [
          patchId,
        ]);
        if (!p) return 'unknown' as const;
        if (p.revoked_at) return 'unchanged' as const;
        await x.run('UPDATE patches SET revoked_at = ?, revoke_reason = ? WHERE id = ?', [
          now,
          reason,
          patchId,
        ]);
        await insertAudit(x, audit);
        return 'ok' as const;
      });
    },

    async getPatch(id: string): Promise<PatchRecord | undefined> {
      const r = await db.get<PatchRow>(
        `SELECT ${PATCH_COLUMNS}, ${tiersAgg(db.kind)} AS tiers FROM patches p WHERE p.id = ?`,
        [id],
      );
      return r && toPatch(r);
    },

    async listPatches(): Promise<PatchRecord[]> {
      const rows = await db.all<PatchRow>(
        `SELECT ${PATCH_COLUMNS}, ${tiersAgg(db.kind)} AS tiers FROM patches p ORDER BY p.published_at DESC, p.id DESC`,
      );
      return rows.map((r) => toPatch(r));
    },
  };
}

/*
 * The offer cache: what a check-in answers, per (kernel release, build id, tier), pre-serialised.
 *
 * Every machine of one kernel and tier gets the same offer and revoke lists, so they are computed once
 * and kept as canonical JSON text (manifest.ts canonicalJson): a check-in then costs one UPDATE, a
 * string concatenation and one signature over the answer (answer-signature.ts), which covers these
 * lists as they are sent. Each offered manifest is signed with the server's current key here, so a key
 * rotation needs no re-publishing. Any publish, promote, revoke or key rotation on this instance
 * clears the cache; entries also expire after `ttlMs` so that other instances sharing a PostgreSQL
 * database pick up changes within that time. With rollout waves or a halt in force, the list depends
 * on the machine's bucket (`offeredFor`). Each entry also carries what the server knows of its kernel
 * (`kernelSupport`, kernel-support.ts), from the list of patched kernels, itself read once per expiry
 * and shared by every entry built meanwhile.
 */
import { canonicalJson } from '../manifest/manifest.js';
import { machineApi, type OfferedPatch, type RevokedPatch } from '../manifest/protocol.js';
import { kernelSupportOf, type PatchedKernel } from './kernel-support.js';
import type { ServerSigner } from './signing.js';
import { rolloutBucket } from './store/rollouts.js';
import type { PatchRecord, Store } from './store.js';

interface Entry {
  /** every offer, for a tier rolled out fully (no waves, no halt) */
  offeredJson: string;
  revokedJson: string;
  offered: number;
  /** the answer's `kernelSupport` and `patchedKernels` as canonical JSON (the latter may be absent) */
  support: { kernelSupport: string; patchedKernels?: string };
  expires: number;
  /** each offer's JSON and reach, when some offer reaches less than the whole tier */
  partial?: Array<{ id: string; json: string; reach: number }>;
}

/**
 * The offered list one machine gets: with waves or a halt in force, only the offers whose reach covers
 * its bucket, and any it already runs (a halted patch stays offered to the machines that applied it).
 */
export function offeredFor(e: Entry, machineId: string, running: ReadonlySet<string>): string {
  if (!e.partial) return e.offeredJson;
  const bucket = rolloutBucket(machineId);
  const parts = e.partial.filter((o) => bucket < o.reach || running.has(o.id)).map((o) => o.json);
  return `[${parts.join(',')}]`;
}

export function toOffer(p: PatchRecord, signer?: ServerSigner): OfferedPatch {
  return {
    patchId: p.id,
    manifest: p.manifest,
    signature: signer ? signer.signManifest(p.manifest, p.id) : p.signature,
    sha256: p.sha256,
    size: p.size,
    url: machineApi.module(p.id),
    publishedAt: p.publishedAt,
  };
}

export function toRevoked(p: PatchRecord): RevokedPatch {
  return { patchId: p.id, name: p.name, moduleName: p.moduleName };
}

/** Whether the rollout of `patchId` reaches this machine's bucket (downloads: only what is offered). */
export function reaches(e: Entry, patchId: string, machineId: string): boolean {
  if (!e.partial) return true;
  const o = e.partial.find((x) => x.id === patchId);
  return o !== undefined && rolloutBucket(machineId) < o.reach;
}

export class OfferCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Entry>>();
  private generation = 0;
  private kernels: { list: Promise<PatchedKernel[]>; expires: number; generation: number } | undefined;

  constructor(
    private readonly store: Store,
    private readonly signer: ServerSigner,
    private readonly ttlMs = 2000,
  ) {}

  clear(): void {
    this.generation++;
    this.entries.clear();
    this.pending.clear();
    this.kernels = undefined;
  }

  /** The kernels with patches, read at most once per expiry (and again after `clear`). */
  private patchedKernels(): Promise<PatchedKernel[]> {
    const k = this.kernels;
    if (k && k.generation === this.generation && k.expires > Date.now()) return k.list;
    const list = this.store.patchedKernels();
    const entry = { list, expires: Date.now() + this.ttlMs, generation: this.generation };
    this.kernels = entry;
    list.catch(() => {
      if (this.kernels === entry) this.kernels = undefined;
    });
    return list;
  }

  async get(release: string, buildId: string, tier: string): Promise<Entry> {
    const key = `${release}\0${buildId}\0${tier}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > Date.now()) return hit;
    let p = this.pending.get(key);
    if (!p) {
      const gen = this.generation;
      p = (async () => {
        const [offered, revoked, kernels] = await Promise.all([
          this.store.offers(release, buildId, tier),
          this.store.revokedFor(release, buildId, tier),
          this.patchedKernels(),
        ]);
        const offers = offered.map((o) => toOffer(o, this.signer));
        const support = kernelSupportOf({ release, buildId }, kernels);
        const e: Entry = {
          offeredJson: canonicalJson(offers),
          revokedJson: canonicalJson(revoked.map(toRevoked)),
          offered: offered.length,
          support: {
            kernelSupport: canonicalJson(support.kernelSupport),
            ...(support.patchedKernels ? { patchedKernels: canonicalJson(support.patchedKernels) } : {}),
          },
          expires: Date.now() + this.ttlMs,
        };
        if (offered.some((o) => o.reach < 100)) {
          e.partial = offers.map((o, i) => ({
            id: o.patchId,
            json: canonicalJson(o),
            reach: offered[i]?.reach ?? 100,
          }));
        }
        if (gen === this.generation) {
          if (this.entries.size > 10_000) this.entries.clear();
          this.entries.set(key, e);
        }
        return e;
      })().finally(() => {
        if (this.pending.get(key) === p) this.pending.delete(key);
      });
      this.pending.set(key, p);
    }
    return p;
  }
}

/*
 * The offer cache: what a check-in answers, per (kernel release, build id, tier), pre-serialised.
 *
 * Every machine of one kernel and tier gets the same offer and revoke lists, so they are computed once
 * and kept as canonical JSON text (manifest.ts canonicalJson): a check-in then costs one UPDATE, a
 * string concatenation and one signature over the answer (answer-signature.ts), which covers these
 * lists as they are sent. Each offered manifest is signed with the server's current key here, so a key
 * rotation needs no re-publishing. Any publish, promote, revoke or key rotation on this instance
 * clears the cache; entries also expire after `ttlMs` so that other instances sharing a PostgreSQL
 * database pick up changes within that time.
 */
import { canonicalJson } from '../manifest/manifest.js';
import { machineApi, type OfferedPatch, type RevokedPatch } from '../manifest/protocol.js';
import type { ServerSigner } from './signing.js';
import type { PatchRecord, Store } from './store.js';

interface Entry {
  offeredJson: string;
  revokedJson: string;
  offered: number;
  expires: number;
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

export class OfferCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<Entry>>();
  private generation = 0;

  constructor(
    private readonly store: Store,
    private readonly signer: ServerSigner,
    private readonly ttlMs = 2000,
  ) {}

  clear(): void {
    this.generation++;
    this.entries.clear();
    this.pending.clear();
  }

  async get(release: string, buildId: string, tier: string): Promise<Entry> {
    const key = `${release}\0${buildId}\0${tier}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > Date.now()) return hit;
    let p = this.pending.get(key);
    if (!p) {
      const gen = this.generation;
      p = (async () => {
        const [offered, revoked] = await Promise.all([
          this.store.offers(release, buildId, tier),
          this.store.revokedFor(release, buildId, tier),
        ]);
        const e: Entry = {
          offeredJson: canonicalJson(offered.map((o) => toOffer(o, this.signer))),
          revokedJson: canonicalJson(revoked.map(toRevoked)),
          offered: offered.length,
          expires: Date.now() + this.ttlMs,
        };
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

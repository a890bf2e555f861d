/*
 * The cache of the initramfs's expensive layers, `$SUTURE_CACHE/vm/layers` (see initramfs.ts).
 *
 * A cached layer is named by the SHA-256 of what went into it (a key the caller makes from its
 * inputs' paths, sizes and mtimes with `statKey`, and our own layout version), so changed inputs make
 * a new layer and unchanged ones reuse it. Sessions booting at once in one process build a layer
 * once; superseded layers of a kind are pruned as a new one is written (pruneLayers).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { vmCacheDir } from './cache.js';
import type { CpioArchive } from './cpio.js';

/** Bump when the layout of a cached layer changes, so old cache entries are not reused. */
const LAYOUT = 'suture-vm-layers-1';

export interface Layer {
  name: 'base' | 'node' | 'suture' | 'run';
  path: string;
  bytes: number;
  /** true when this layer came from the cache rather than being built now */
  cached: boolean;
}

/** SHA-256 (hex) of `parts`, each ended by a NUL so no two lists hash alike. */
export function sha(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

/** A cheap identity for host files: path, size, mtime (content hashing 100 MB per boot is not cheap). */
export async function statKey(files: readonly string[]): Promise<string> {
  const rows: string[] = [];
  for (const f of files) {
    const st = await stat(f);
    rows.push(`${f}:${st.size}:${st.mtimeMs}`);
  }
  return rows.join('\n');
}

/**
 * The Node layer is stored uncompressed: inflating 100 MB inside a TCG guest is slower than copying it
 * (measured, boot with Node to `node -e 0`, alternating: median 8.2 s raw vs 8.9 s gzip'd at moderate
 * host load, 10-35% apart under heavy load), at the price of a 104 MB cache file instead of 43 MB.
 * The kernel accepts plain and compressed archives in one image.
 */
/** layers being built by this process, so sessions booting at once compress a layer only once */
const building = new Map<string, Promise<Layer>>();

export async function cachedLayer(
  name: Layer['name'],
  key: string,
  build: () => Promise<CpioArchive>,
): Promise<Layer> {
  const dir = join(vmCacheDir(), 'layers');
  const gzip = name !== 'node';
  const path = join(dir, `${name}-${sha(LAYOUT, name, key).slice(0, 32)}.cpio${gzip ? '.gz' : ''}`);
  if (existsSync(path)) {
    const now = new Date();
    await utimes(path, now, now).catch(() => {}); // mark as in use, for pruneLayers
    return { name, path, bytes: (await stat(path)).size, cached: true };
  }
  const inflight = building.get(path);
  if (inflight) return inflight;
  const p = (async (): Promise<Layer> => {
    await mkdir(dir, { recursive: true });
    const archive = await build();
    await archive.write(path, gzip);
    await pruneLayers(dir, name, path);
    return { name, path, bytes: (await stat(path)).size, cached: false };
  })();
  building.set(path, p);
  try {
    return await p;
  } finally {
    building.delete(path);
  }
}

const KEEP_LAYERS = 3;
const KEEP_RECENT_MS = 30 * 60_000;

/**
 * Delete superseded layers of one kind: keep the newest KEEP_LAYERS and any used in the last half hour
 * (a session may be about to copy it); drop temporaries a killed builder left over an hour ago.
 */
export async function pruneLayers(dir: string, name: string, keep: string): Promise<void> {
  const now = Date.now();
  const mine = [];
  for (const f of await readdir(dir)) {
    if (!f.startsWith(`${name}-`)) continue;
    const p = join(dir, f);
    const st = await stat(p).catch(() => undefined);
    if (!st) continue;
    if (f.endsWith('.tmp')) {
      if (now - st.mtimeMs > 3_600_000) await rm(p, { force: true });
    } else if (p !== keep) {
      mine.push({ p, t: st.mtimeMs });
    }
  }
  mine.sort((a, b) => b.t - a.t);
  for (const [i, l] of mine.entries()) {
    if (i >= KEEP_LAYERS - 1 && now - l.t > KEEP_RECENT_MS) await rm(l.p, { force: true });
  }
}

/*
 * Cache garbage collection: removing what no cached kernel uses any more.
 *
 * Entries are immutable and content-addressed, so they pile up: a source tree prepared by an older
 * recipe, the leftovers of killed fetches, packages of a release whose record was removed. An entry is
 * live when a release's directory links to it (kernels/<release>/{image,headers,dbg}, and `source` if
 * that release's record is current, with the build root its record names); a blob is live when a live
 * record lists its package. Everything
 * else older than `minAgeMs` is removed — the age guard keeps a fetch running right now (whose entries
 * are not linked yet) safe.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { cacheRoot } from './cache.js';
import { readCachedRecord } from './fetch.js';

export interface GcOptions {
  /** only remove things last modified longer ago than this (default 1 hour) */
  minAgeMs?: number;
  dryRun?: boolean;
  root?: string;
}

export interface GcResult {
  removed: string[];
  kept: string[];
}

function linkTarget(p: string): string | undefined {
  try {
    return basename(readlinkSync(p));
  } catch {
    return undefined;
  }
}

/** Remove unreferenced entries, staging trees, partial downloads and blobs. */
export async function collectGarbage(opts: GcOptions = {}): Promise<GcResult> {
  const root = opts.root ?? cacheRoot();
  const minAge = opts.minAgeMs ?? 3_600_000;
  const now = Date.now();
  const liveEntries = new Set<string>();
  const liveBlobs = new Set<string>();
  const kernels = join(root, 'kernels');
  for (const release of existsSync(kernels) ? readdirSync(kernels) : []) {
    const dir = join(kernels, release);
    for (const part of ['image', 'headers', 'dbg']) {
      const t = linkTarget(join(dir, part));
      if (t) liveEntries.add(t);
    }
    const current = readCachedRecord(release, root);
    const src = linkTarget(join(dir, 'source'));
    if (current && src) {
      liveEntries.add(src); // the `tree-<key>.@tag` directory
      const published = readdirSync(join(root, 'entries')).find(
        (e) => linkTarget(join(root, 'entries', e)) === src,
      );
      if (published) liveEntries.add(published);
      // the build root the tree was prepared in (trixie kernels on a Debian 12 host) is live too
      if (current.toolchain?.root) liveEntries.add(basename(current.toolchain.root));
    }
    try {
      const rec = JSON.parse(readFileSync(join(dir, 'target.json'), 'utf8')) as {
        packages?: { sha256?: string }[];
      };
      for (const p of rec.packages ?? []) if (typeof p.sha256 === 'string') liveBlobs.add(p.sha256);
    } catch {
      // no or unreadable record: its blobs are not protected
    }
  }
  const old = (p: string) => now - lstatSync(p).mtimeMs >= minAge;
  const candidates: string[] = [];
  const scan = (dir: string, isLive: (name: string) => boolean) => {
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir)) {
      if (f.startsWith('.')) continue;
      const p = join(dir, f);
      if (!isLive(f) && old(p)) candidates.push(p);
    }
  };
  scan(join(root, 'entries'), (f) => liveEntries.has(f));
  scan(join(root, 'entries', '.staging'), () => false);
  scan(join(root, 'blobs', 'partial'), () => false);
  scan(join(root, 'blobs', 'sha256'), (f) => liveBlobs.has(f));
  const kept = [...liveEntries].map((e) => join(root, 'entries', e));
  if (!opts.dryRun) for (const p of candidates) await rm(p, { recursive: true, force: true });
  return { removed: candidates, kept };
}

/*
 * The host's patch store: the livepatches this machine should carry, kept so they survive a reboot.
 *
 * Layout: <state>/patches/<seq>-<name>/{<name>.ko, manifest.json}, where <seq> orders entries by
 * when they were stored. Storing a cumulative (replace) patch drops every earlier entry, because the
 * kernel would replace them anyway; reverting a patch drops its entry. Only patches with a manifest
 * are stored: at boot the manifest's kernel build id decides whether a patch belongs to the kernel
 * that just booted (see boot.ts).
 */
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../manifest/manifest.js';
import { readManifest } from './manifest-read.js';
import type { HostRoots } from './roots.js';

export interface StoredPatch {
  seq: number;
  dir: string;
  module: string;
  manifest: Manifest;
}

export function storeDir(roots: HostRoots): string {
  return join(roots.state, 'patches');
}

/** Stored patches in order; entries that do not parse are skipped (reported by `problems`). */
export function storedPatches(roots: HostRoots, problems: string[] = []): StoredPatch[] {
  const dir = storeDir(roots);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: StoredPatch[] = [];
  for (const n of names) {
    const m = /^(\d+)-(.+)$/.exec(n);
    if (!m) continue;
    const entry = join(dir, n);
    try {
      const manifest = readManifest(
        readFileSync(join(entry, 'manifest.json'), 'utf8'),
        join(entry, 'manifest.json'),
      );
      out.push({
        seq: Number(m[1]),
        dir: entry,
        module: join(entry, `${manifest.module.name}.ko`),
        manifest,
      });
    } catch (e) {
      problems.push(`${entry}: ${(e as Error).message}`);
    }
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** Drop the stored entries of module `patch` (only the one whose module has `sha256`, when given). */
export function removeStored(roots: HostRoots, patch: string, sha256?: string): void {
  for (const s of storedPatches(roots))
    if (s.manifest.module.name === patch && (sha256 === undefined || s.manifest.module.sha256 === sha256))
      rmSync(s.dir, { recursive: true, force: true });
}

/** Copy a verified module and its manifest into the store (atomically: staged, then renamed). */
export function storePatch(roots: HostRoots, module: string, manifest: Manifest): StoredPatch {
  const dir = storeDir(roots);
  mkdirSync(dir, { recursive: true });
  const existing = storedPatches(roots);
  const seq = existing.reduce((m, s) => Math.max(m, s.seq), 0) + 1;
  const name = `${String(seq).padStart(6, '0')}-${manifest.module.name}`;
  const staging = join(dir, `.tmp-${process.pid}-${name}`);
  mkdirSync(staging, { recursive: true });
  copyFileSync(module, join(staging, `${manifest.module.name}.ko`));
  writeFileSync(join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(staging, join(dir, name));
  for (const s of existing) {
    if (manifest.replace || s.manifest.module.name === manifest.module.name)
      rmSync(s.dir, { recursive: true, force: true });
  }
  return { seq, dir: join(dir, name), module: join(dir, name, `${manifest.module.name}.ko`), manifest };
}

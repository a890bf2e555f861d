/*
 * The manifest next to the module: what it replaces, for which exact kernel, made from which diff, by
 * which Suture. The livepatch's own version is the caller's (`suture build --patch-version`, default
 * `1`); the tool's is package.json's.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { KernelTarget } from '../kernel/target.js';
import { type Manifest, type PatchedObject, patchedObjectSchema } from '../manifest/manifest.js';
import { VERSION } from '../version.js';

/** The version a manifest gets when the caller names none. */
export const DEFAULT_PATCH_VERSION = '1';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface ManifestRequest {
  name: string;
  /** the livepatch's version (default DEFAULT_PATCH_VERSION) */
  version?: string;
  replace: boolean;
  target: KernelTarget;
  ko: string;
  diffText: string;
  /** what the module replaces, per klp object (the module stage's answer) */
  objects: PatchedObject[];
}

export function makeManifest(m: ManifestRequest): Manifest {
  return {
    schema: 1,
    name: m.name,
    version: m.version ?? DEFAULT_PATCH_VERSION,
    kernel: { release: m.target.release, buildId: m.target.buildId, debianVersion: m.target.debianVersion },
    replace: m.replace,
    // validated through the manifest schema's own parser (parse, don't trust our own output)
    objects: m.objects.map((o) => patchedObjectSchema.parse(o)),
    module: {
      file: basename(m.ko),
      sha256: sha256(readFileSync(m.ko)),
      name: `livepatch_${m.name.replace(/-/g, '_')}`,
    },
    source: { diffSha256: sha256(m.diffText) },
    cves: [],
    tool: { name: 'suture', version: VERSION },
    createdAt: new Date().toISOString(),
  };
}

/*
 * Fetching a target kernel: from a release name to a complete KernelTarget in the cache.
 *
 * ensureKernel(release) resolves the release's four Debian packages (image, headers, dbg, source of the
 * same version), downloads each into the blob store (verified against apt's SHA256), extracts image,
 * headers and dbg packages into entries, prepares the source tree, reads vmlinux's build id, links
 * everything under kernels/<release>/ and finally writes kernels/<release>/target.json. That file is the
 * completion marker: it is written last and atomically, so its presence means every path in it was
 * finished and verified. The warm path reads it and stats a few files, without running apt or hashing.
 *
 * Every step is idempotent and resumable: a killed fetch leaves at worst a partial download (resumed)
 * or a staging tree (removed and redone) that no reader ever sees; concurrent fetches of one release
 * serialise on the release lock and the second finds the first's result.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { fail } from '../diagnostic.js';
import { readBuildId } from '../elf/index.js';
import { aptPrintUris, type DebLocation } from './apt.js';
import {
  cacheRoot,
  ensureBlob,
  ensureEntry,
  kernelDir,
  linkAtomic,
  sha256File,
  withLock,
  writeFileAtomic,
} from './cache.js';
import { parseKernelConfig } from './config.js';
import { extractDeb } from './deb.js';
import { packagesFor, type ResolvedRelease, resolveRelease } from './releases.js';
import { prepareSourceTree, prepareTimings, TREE_RECIPE } from './source-tree.js';
import type { KernelTarget } from './target.js';
import { type Toolchain, type ToolchainOptions, toolchainForConfig } from './toolchain.js';

export type ProgressEvent =
  /** a step starts, ends (with its duration) or was found already done in the cache */
  | { kind: 'step'; step: string; state: 'start' | 'done' | 'cached'; ms?: number }
  /** bytes moved within the current step (download or extraction) */
  | { kind: 'bytes'; step: string; done: number; total: number }
  /** a line of build output (make) within the current step */
  | { kind: 'output'; step: string; line: string };

export interface EnsureOptions {
  onProgress?: (e: ProgressEvent) => void;
  /** how the kernel's toolchain is found (tests: a fake host probe or bootstrapper) */
  toolchain?: ToolchainOptions;
}

const TargetRecord = z.object({
  format: z.literal(1),
  /** the source-tree recipe the tree was prepared with; an older one is re-prepared */
  treeRecipe: z.number().optional(),
  release: z.string(),
  /** the suite whose archive the packages came from (absent in records of older versions: bookworm) */
  suite: z.string().optional(),
  /** the kernel's compiler (CONFIG_CC_VERSION_TEXT) and where Suture runs it */
  compiler: z.string().optional(),
  toolchain: z.object({ kind: z.enum(['host', 'build-root']), root: z.string().optional() }).optional(),
  debianVersion: z.string(),
  buildId: z.string().regex(/^[0-9a-f]{16,128}$/),
  dir: z.string(),
  vmlinuz: z.string(),
  config: z.string(),
  modulesDir: z.string(),
  vmlinux: z.string(),
  debugModulesDir: z.string(),
  sourceTree: z.string(),
  moduleSymvers: z.string(),
  packages: z.array(
    z.object({ package: z.string(), version: z.string(), sha256: z.string(), size: z.number() }),
  ),
  timings: z.record(z.string(), z.number()),
});
export type TargetRecord = z.infer<typeof TargetRecord>;

function recordPath(root: string, release: string): string {
  return join(kernelDir(root, release), 'target.json');
}

/** The files whose presence the warm path checks (cheap stats, no hashing). */
function essentials(t: KernelTarget): string[] {
  return [
    t.vmlinuz,
    t.config,
    join(t.modulesDir, 'modules.dep'),
    t.vmlinux,
    t.debugModulesDir,
    join(t.sourceTree, '.config'),
    join(t.sourceTree, 'include/generated/utsrelease.h'),
    t.moduleSymvers,
  ];
}

/** Read the cached record of `release`, or undefined if it is absent or incomplete. */
export function readCachedRecord(release: string, root = cacheRoot()): TargetRecord | undefined {
  const p = recordPath(root, release);
  if (!existsSync(p)) return undefined;
  let rec: TargetRecord;
  try {
    rec = TargetRecord.parse(JSON.parse(readFileSync(p, 'utf8')));
  } catch {
    return undefined;
  }
  if (rec.release !== release || rec.treeRecipe !== TREE_RECIPE) return undefined;
  if (!essentials(rec).every((f) => existsSync(f))) return undefined;
  return rec;
}

function toTarget(rec: TargetRecord): KernelTarget {
  const {
    format: _f,
    treeRecipe: _r,
    packages: _p,
    timings: _t,
    suite: _s,
    compiler: _c,
    toolchain: _tc,
    ...t
  } = rec;
  return t;
}

/** The cached target of `release`; throws KERNEL-NOT-CACHED if it was never fetched (completely). */
export function openCachedKernel(release: string): KernelTarget {
  packagesFor(release); // validates the name
  const rec = readCachedRecord(release);
  if (!rec) {
    fail('KERNEL-NOT-CACHED', `kernel ${release} is not in the cache (${cacheRoot()})`, {
      hint: `run \`suture kernel fetch ${release}\``,
    });
  }
  return toTarget(rec);
}

/** Timings and package details of a cached release (for `suture kernel info`). */
export function cachedDetails(release: string): TargetRecord | undefined {
  return readCachedRecord(release);
}

/**
 * Make sure `release` is fully in the cache and return it. Idempotent; the warm path takes
 * milliseconds. Throws SutureError for unknown releases, version mismatches, corrupt downloads.
 */
export async function ensureKernel(release: string, opts: EnsureOptions = {}): Promise<KernelTarget> {
  const warm = readCachedRecord(release);
  if (warm) return toTarget(warm);
  const { resolved, apt } = await resolveRelease(release);
  const locs = aptPrintUris(
    (['image', 'headers', 'dbg', 'source'] as const).map((k) => ({
      package: resolved.packages[k],
      version: resolved.debianVersion,
    })),
    apt,
  );
  return ensureKernelFrom(resolved, locs, opts);
}

/**
 * The fetch proper, from an already resolved release and its download locations (apt's, or a test's
 * fake packages). Serialised per release by a lock; the second caller finds the first's result.
 */
export async function ensureKernelFrom(
  resolved: ResolvedRelease,
  locs: DebLocation[],
  opts: EnsureOptions = {},
): Promise<KernelTarget> {
  const release = resolved.release;
  const root = cacheRoot();
  mkdirSync(kernelDir(root, release), { recursive: true });
  return withLock(root, `kernel-${release}`, async () => {
    const again = readCachedRecord(release, root);
    if (again) return toTarget(again);
    return populate(root, resolved, locs, opts.onProgress ?? (() => undefined), opts.toolchain ?? {});
  });
}

async function populate(
  root: string,
  r: ResolvedRelease,
  locs: DebLocation[],
  emit: (e: ProgressEvent) => void,
  toolchainOpts: ToolchainOptions,
): Promise<KernelTarget> {
  const release = r.release;
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>, cached?: () => boolean): Promise<T> => {
    if (cached?.()) {
      emit({ kind: 'step', step: name, state: 'cached' });
      return fn();
    }
    const t0 = performance.now();
    emit({ kind: 'step', step: name, state: 'start' });
    const v = await fn();
    const ms = performance.now() - t0;
    timings[name] = Math.round(ms);
    emit({ kind: 'step', step: name, state: 'done', ms });
    return v;
  };
  const loc = (pkg: string): DebLocation => {
    const l = locs.find((x) => x.package === pkg && x.version === r.debianVersion);
    if (!l) return fail('APT-NO-URI', `no download location for ${pkg}=${r.debianVersion}`);
    return l;
  };
  const blobs: Record<'image' | 'headers' | 'dbg' | 'source', string> = {
    image: '',
    headers: '',
    dbg: '',
    source: '',
  };
  for (const k of ['image', 'headers', 'source', 'dbg'] as const) {
    const l = loc(r.packages[k]);
    const name = `download ${l.filename}`;
    blobs[k] = await step(
      name,
      () =>
        ensureBlob(root, { uri: l.uri, sha256: l.sha256, size: l.size, name: l.filename }, (done, total) =>
          emit({ kind: 'bytes', step: name, done, total }),
        ),
      () => existsSync(join(root, 'blobs', 'sha256', l.sha256)),
    );
  }
  const extract = async (k: 'image' | 'headers' | 'dbg', after?: (dir: string) => Promise<void>) => {
    const l = loc(r.packages[k]);
    const entry = `deb-${l.sha256}`;
    const name = `extract ${l.package}`;
    return step(
      name,
      () =>
        ensureEntry(
          root,
          entry,
          async (dir) => {
            await extractDeb(blobs[k], dir, (done, total) =>
              emit({ kind: 'bytes', step: name, done, total }),
            );
            await after?.(dir);
          },
          { relocatable: true },
        ),
      () => existsSync(join(root, 'entries', entry)),
    );
  };
  const image = await extract('image', async (dir) => {
    // trixie's packages are usr-merged (usr/lib/modules/<release>): give the entry the `lib → usr/lib`
    // link a merged-usr system has, so depmod and every reader find lib/modules/<release> on both lines
    if (!existsSync(join(dir, 'lib')) && existsSync(join(dir, 'usr', 'lib', 'modules')))
      symlinkSync(join('usr', 'lib'), join(dir, 'lib'));
    // Debian generates modules.dep at install time (postinst); do it here, inside the staging tree.
    const d = spawnSync('depmod', ['-b', dir, release], { encoding: 'utf8' });
    if (d.status !== 0) {
      fail('KERNEL-DEPMOD-FAILED', `depmod failed for ${release}`, {
        detail: (d.stderr ?? String(d.error)).trim().split('\n'),
        hint: 'install kmod (`apt-get install kmod`)',
      });
    }
  });
  const headers = await extract('headers');
  const dbg = await extract('dbg');

  const vmlinuz = join(image, 'boot', `vmlinuz-${release}`);
  const config = join(image, 'boot', `config-${release}`);
  const modulesDir = join(image, 'lib', 'modules', release);
  const symvers = join(headers, 'usr', 'src', `linux-headers-${release}`, 'Module.symvers');
  const vmlinux = join(dbg, 'usr', 'lib', 'debug', 'boot', `vmlinux-${release}`);
  const debugModulesDir = join(dbg, 'usr', 'lib', 'debug', 'lib', 'modules', release);
  for (const [what, p] of [
    ['vmlinuz', vmlinuz],
    ['config', config],
    ['modules.dep', join(modulesDir, 'modules.dep')],
    ['Module.symvers', symvers],
    ['debug vmlinux', vmlinux],
    ['debug modules', debugModulesDir],
  ] as const) {
    if (!existsSync(p)) {
      fail('KERNEL-PACKAGE-LAYOUT', `the ${what} of ${release} is not where Debian puts it`, {
        location: { file: p },
        why: 'the package layout differs from Debian 12 kernel packages',
        hint: 'this release is not supported; report it',
      });
    }
  }

  const cfg = parseKernelConfig(readFileSync(config, 'utf8'));
  const tc: Toolchain = await step('find the kernel’s compiler', () =>
    toolchainForConfig(cfg, r.suite, {
      ...toolchainOpts,
      onLine: (line) => emit({ kind: 'output', step: 'build root', line }),
    }),
  );
  const srcLoc = loc(r.packages.source);
  const key = (await Promise.all([sha256File(config), sha256File(symvers)])).join('');
  // a tree prepared inside a build root is keyed by it too (host trees keep their old keys)
  const rootKey = tc.root ? { root: tc.root.split('/').pop(), make: tc.makeArgs, guarded: true } : {};
  const treeKey = createHash('sha256')
    .update(JSON.stringify({ recipe: TREE_RECIPE, release, source: srcLoc.sha256, key, ...rootKey }))
    .digest('hex')
    .slice(0, 32);
  const treeEntry = `tree-${treeKey}`;
  const sourceTree = await step(
    'prepare source tree',
    () =>
      ensureEntry(
        root,
        treeEntry,
        (tree) =>
          prepareSourceTree(
            {
              tree,
              release,
              upstreamVersion: r.upstreamVersion,
              sourceDeb: blobs.source,
              sourceDebSize: srcLoc.size,
              sourcePackage: r.packages.source,
              config,
              moduleSymvers: symvers,
              toolchain: tc,
            },
            {
              onStep: (s, state, ms) => {
                emit({ kind: 'step', step: s, state, ...(ms !== undefined ? { ms } : {}) });
                if (ms !== undefined) timings[s] = Math.round(ms);
              },
              onBytes: (done, total) => emit({ kind: 'bytes', step: 'untar source', done, total }),
              onOutput: (line) => emit({ kind: 'output', step: 'prepare source tree', line }),
            },
          ),
        { relocatable: false },
      ),
    () => existsSync(join(root, 'entries', treeEntry)),
  );
  for (const [k, v] of Object.entries(prepareTimings(sourceTree))) timings[k] ??= v;
  const buildId = await step('read build id', () => readBuildId(vmlinux));

  const dir = kernelDir(root, release);
  mkdirSync(dir, { recursive: true });
  await linkAtomic(image, join(dir, 'image'));
  await linkAtomic(headers, join(dir, 'headers'));
  await linkAtomic(dbg, join(dir, 'dbg'));
  await linkAtomic(sourceTree, join(dir, 'source'));
  const rec: TargetRecord = {
    format: 1,
    treeRecipe: TREE_RECIPE,
    release,
    suite: r.suite,
    compiler: tc.kernelCompiler.text,
    toolchain: { kind: tc.kind, ...(tc.root ? { root: tc.root } : {}) },
    debianVersion: r.debianVersion,
    buildId,
    dir,
    vmlinuz,
    config,
    modulesDir,
    vmlinux,
    debugModulesDir,
    sourceTree: realpathSync(sourceTree),
    moduleSymvers: join(realpathSync(sourceTree), 'Module.symvers'),
    packages: locs.map((l) => ({ package: l.package, version: l.version, sha256: l.sha256, size: l.size })),
    timings,
  };
  await writeFileAtomic(recordPath(root, release), `${JSON.stringify(rec, null, 2)}\n`);
  return toTarget(rec);
}

/** Remove the completion record of `release` so the next ensureKernel re-checks everything. */
export async function forgetKernel(release: string): Promise<void> {
  packagesFor(release);
  await rm(recordPath(cacheRoot(), release), { force: true });
}

/** Size in bytes of a file, or 0 (for `info`). */
export function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

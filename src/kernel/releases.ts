/*
 * Kernel releases Suture can target, and the exact Debian packages that make up each one.
 *
 * A release (`uname -r`, e.g. `6.1.0-53-cloud-amd64`) is an ABI of Debian's kernel: its packages
 * `linux-image-<release>-unsigned` (vmlinuz, config, modules), `linux-headers-<release>`
 * (Module.symvers), `linux-image-<release>-dbg` (vmlinux with symbols) all carry one Debian version
 * (e.g. `6.1.187-1`), and the source is `linux-source-6.1` of that *same* version. A source of any
 * other version would compile different code than the running kernel's, so it is refused, never
 * substituted.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';
import { type AptVersion, aptMadison, aptSearchNames, aptUpdate } from './apt.js';
import { cacheRoot } from './cache.js';

/** The flavour and series Suture targets today: Debian 12's cloud kernels of Linux 6.1. */
export const FLAVOUR = 'cloud-amd64';
export const SERIES = '6.1';

export interface ReleaseName {
  release: string;
  /** `6.1` */
  series: string;
  /** `53` */
  abi: number;
  flavour: string;
}

export interface KernelPackages {
  image: string;
  headers: string;
  dbg: string;
  source: string;
}

export interface ResolvedRelease {
  release: string;
  debianVersion: string;
  /** upstream version the source must carry, e.g. `6.1.187` */
  upstreamVersion: string;
  packages: KernelPackages;
}

export interface ReleaseListing {
  release: string;
  debianVersion: string;
  cached: boolean;
}

/** Parse-don't-validate a release string. */
export function parseRelease(release: string): ReleaseName {
  const m = /^(\d+\.\d+)\.0-(\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/.exec(release);
  if (!m?.[1] || !m[2] || !m[3]) {
    fail('KERNEL-BAD-RELEASE', `\`${release}\` is not a Debian kernel release`, {
      why: 'a release looks like `uname -r` on Debian: <series>.0-<abi>-<flavour>',
      hint: `for example ${SERIES}.0-53-${FLAVOUR}; \`suture kernel list\` shows the available ones`,
    });
  }
  return { release, series: m[1], abi: Number(m[2]), flavour: m[3] };
}

export function packagesFor(release: string): KernelPackages {
  const r = parseRelease(release);
  return {
    image: `linux-image-${release}-unsigned`,
    headers: `linux-headers-${release}`,
    dbg: `linux-image-${release}-dbg`,
    source: `linux-source-${r.series}`,
  };
}

/** `6.1.187-1` → `6.1.187` (drop epoch and Debian revision). */
export function upstreamOf(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

/** Order Debian kernel versions like `6.1.187-1` < `6.1.192-2` (numeric fields, left to right). */
export function compareDebianVersions(a: string, b: string): number {
  const pa = a.split(/[^0-9]+/).map(Number);
  const pb = b.split(/[^0-9]+/).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** Releases of `flavour` in `series` from `apt-cache madison` lines of their image packages. */
export function releasesFromMadison(
  lines: AptVersion[],
  series = SERIES,
  flavour = FLAVOUR,
): ReleaseListing[] {
  const re = new RegExp(`^linux-image-(${series.replace('.', '\\.')}\\.0-\\d+-${flavour})-unsigned$`);
  const best = new Map<string, string>();
  for (const l of lines) {
    const m = re.exec(l.package);
    if (!m?.[1]) continue;
    const prev = best.get(m[1]);
    if (!prev || compareDebianVersions(l.version, prev) > 0) best.set(m[1], l.version);
  }
  return [...best]
    .map(([release, debianVersion]) => ({ release, debianVersion, cached: false }))
    .sort((a, b) => parseRelease(a.release).abi - parseRelease(b.release).abi);
}

/**
 * Decide the packages of `release` from apt's view (`madison` lines for its four packages, and the
 * list of known releases for the error). Pure: the unit tests feed it captured apt output.
 */
export function resolveFromMadison(
  release: string,
  lines: AptVersion[],
  known: ReleaseListing[],
): ResolvedRelease {
  const pk = packagesFor(release);
  const versionsOf = (p: string) => lines.filter((l) => l.package === p).map((l) => l.version);
  const images = versionsOf(pk.image).sort(compareDebianVersions);
  const debianVersion = images[images.length - 1];
  if (!debianVersion) {
    fail('KERNEL-UNKNOWN-RELEASE', `no Debian kernel package for release ${release}`, {
      why: `apt knows no package ${pk.image}`,
      detail: known.length
        ? ['known releases:', ...known.map((k) => `  ${k.release}  (${k.debianVersion})`)]
        : ['apt knows no release of this flavour at all'],
      hint: 'pick one of the known releases, or run `apt-get update` if the list looks stale',
    });
  }
  for (const [role, p] of [
    ['headers', pk.headers],
    ['debug symbols', pk.dbg],
  ] as const) {
    if (!versionsOf(p).includes(debianVersion)) {
      fail(
        'KERNEL-PACKAGE-MISSING',
        `${p}=${debianVersion} (the ${role} of ${release}) is not on the mirror`,
        {
          detail: [`versions apt knows of ${p}: ${versionsOf(p).join(', ') || 'none'}`],
          hint: 'run `apt-get update`; if it stays missing, this release cannot be targeted',
        },
      );
    }
  }
  const sources = versionsOf(pk.source).sort(compareDebianVersions);
  if (!sources.includes(debianVersion)) {
    fail('KERNEL-SOURCE-MISMATCH', `no ${pk.source} of version ${debianVersion} for ${release}`, {
      detail: [
        `image ${pk.image} is ${debianVersion}`,
        `${pk.source} versions on the mirror: ${sources.join(', ') || 'none'}`,
      ],
      why: 'a livepatch must be compiled from exactly the source the running kernel was built from; another version would silently differ',
      hint: 'target a release whose source is still on the mirror (`suture kernel list`), or add the archive that carries it',
    });
  }
  return { release, debianVersion, upstreamVersion: upstreamOf(debianVersion), packages: pk };
}

/** Is `release` fully in the cache (its `target.json`, written last, exists)? */
export function isCached(release: string, root = cacheRoot()): boolean {
  return existsSync(join(root, 'kernels', release, 'target.json'));
}

/** Releases cached locally (whatever apt says now). */
export function cachedReleases(root = cacheRoot()): string[] {
  const dir = join(root, 'kernels');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((r) => isCached(r, root));
}

function imageNames(): string[] {
  const re = `^linux-image-${SERIES.replace('.', '\\.')}\\.0-[0-9]+-${FLAVOUR}-unsigned$`;
  let names = aptSearchNames(re);
  if (names.length === 0) {
    aptUpdate(); // fresh machine: package lists not downloaded yet
    names = aptSearchNames(re);
  }
  return names;
}

/** The cloud-amd64 6.1 ABIs on the mirror with their Debian versions, marking cached ones. */
export function listReleases(): ReleaseListing[] {
  const root = cacheRoot();
  const list = releasesFromMadison(aptMadison(imageNames()));
  for (const r of list) r.cached = isCached(r.release, root);
  return list;
}

/** Resolve `release` to its Debian version and packages, or throw a diagnostic. */
export function resolveRelease(release: string): ResolvedRelease {
  const pk = packagesFor(release);
  let lines = aptMadison([pk.image, pk.headers, pk.dbg, pk.source]);
  if (lines.length === 0) {
    aptUpdate();
    lines = aptMadison([pk.image, pk.headers, pk.dbg, pk.source]);
  }
  const hasImage = lines.some((l) => l.package === pk.image);
  return resolveFromMadison(release, lines, hasImage ? [] : listReleases());
}

/*
 * Kernel releases Suture can target, and the exact Debian packages that make up each one.
 *
 * A release (`uname -r`, release-name.ts) is an ABI of Debian's kernel: its packages
 * `linux-image-<release>-unsigned` (vmlinuz, config, modules), `linux-headers-<release>`
 * (Module.symvers), `linux-image-<release>-dbg` (vmlinux with symbols) all carry one Debian version
 * (e.g. `6.1.187-1`, `6.12.117-1~deb12u1`, `6.12.117-1`), and the source is `linux-source-<series>` of that
 * *same* version, from the same suite. A source of any other version would compile different code than
 * the running kernel's, so it is refused, never substituted. Each suite is read through the apt that
 * answers for it (suites.ts): the host's for its own suite, Suture's own signed index for another.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';
import {
  type AptContext,
  type AptVersion,
  aptMadison,
  aptSearchNames,
  aptShow,
  aptUpdate,
  HOST_APT,
} from './apt.js';
import { cacheRoot } from './cache.js';
import { compilerFromDepends } from './compiler.js';
import {
  closestReleases,
  compareReleases,
  FLAVOURS,
  type Flavour,
  type KernelPackages,
  packagesFor,
  parseRelease,
  type ReleaseName,
  SUITE_NUMBER,
  SUITES,
  type Suite,
} from './release-name.js';
import { aptFor } from './suites.js';

export { type KernelPackages, packagesFor, parseRelease, type ReleaseName } from './release-name.js';

export interface ResolvedRelease {
  release: string;
  suite: Suite;
  debianVersion: string;
  /** upstream version the source must carry, e.g. `6.1.187` */
  upstreamVersion: string;
  packages: KernelPackages;
}

export interface ReleaseListing {
  release: string;
  suite: Suite;
  series: string;
  flavour: Flavour;
  debianVersion: string;
  /** the compiler the kernel was built with: the headers' dependency (`gcc-12`), or the config's text once cached */
  compiler?: string;
  compilerFrom?: 'depends' | 'config';
  cached: boolean;
}

/** `6.1.187-1` → `6.1.187`, `6.12.117-1~deb12u1` → `6.12.117` (drop epoch and Debian revision). */
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

function tryParse(release: string): ReleaseName | undefined {
  try {
    return parseRelease(release);
  } catch {
    return undefined;
  }
}

/** Releases of `suite` from `apt-cache madison` lines of their image packages (other flavours skipped). */
export function releasesFromMadison(lines: AptVersion[], suite: Suite = 'bookworm'): ReleaseListing[] {
  const best = new Map<string, string>();
  for (const l of lines) {
    const m = /^linux-image-(.+)-unsigned$/.exec(l.package);
    const r = m?.[1] ? tryParse(m[1]) : undefined;
    if (!r || r.suite !== suite) continue;
    const prev = best.get(r.release);
    if (!prev || compareDebianVersions(l.version, prev) > 0) best.set(r.release, l.version);
  }
  return [...best]
    .map(([release, debianVersion]): ReleaseListing => {
      const r = parseRelease(release);
      return { release, suite, series: r.series, flavour: r.flavour, debianVersion, cached: false };
    })
    .sort((a, b) => compareReleases(a.release, b.release));
}

function unknownRelease(release: string, image: string, known: ReleaseListing[], ctx: AptContext): never {
  const near = closestReleases(
    release,
    known.map((k) => k.release),
  );
  const version = (r: string) => known.find((k) => k.release === r)?.debianVersion ?? '';
  return fail('KERNEL-UNKNOWN-RELEASE', `no Debian kernel package for release ${release}`, {
    why: `${ctx.label} knows no package ${image}`,
    detail: near.length
      ? ['closest known releases:', ...near.map((r) => `  ${r}  (${version(r)})`)]
      : ['apt knows no release of this suite and flavour at all'],
    hint:
      ctx === HOST_APT
        ? 'pick one of these (`suture kernel list` shows them all), or run `apt-get update` if the list looks stale'
        : 'pick one of these (`suture kernel list` shows them all); the index was refreshed from the archive just now',
  });
}

/**
 * Decide the packages of `release` from apt's view (`madison` lines for its four packages, and the
 * list of known releases for the error). Pure: the unit tests feed it captured apt output.
 */
export function resolveFromMadison(
  release: string,
  lines: AptVersion[],
  known: ReleaseListing[],
  ctx: AptContext = HOST_APT,
): ResolvedRelease {
  const name = parseRelease(release);
  const pk = packagesFor(release);
  const versionsOf = (p: string) => lines.filter((l) => l.package === p).map((l) => l.version);
  const images = versionsOf(pk.image).sort(compareDebianVersions);
  const debianVersion = images[images.length - 1];
  if (!debianVersion) unknownRelease(release, pk.image, known, ctx);
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
  return {
    release,
    suite: name.suite,
    debianVersion,
    upstreamVersion: upstreamOf(debianVersion),
    packages: pk,
  };
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

/** The `apt-cache search` pattern for the image packages of `suite`'s releases of the given flavours. */
export function imagePattern(suite: Suite, flavours: readonly Flavour[] = FLAVOURS): string {
  const abi =
    suite === 'bookworm' ? '(-[0-9]+|\\+deb12(\\.[0-9]+)?)' : `\\+deb${SUITE_NUMBER[suite]}(\\.[0-9]+)?`;
  return `^linux-image-[0-9]+\\.[0-9]+(\\.[0-9]+)?${abi}-(${flavours.join('|')})-unsigned$`;
}

function imageNames(suite: Suite, ctx: AptContext, flavours: readonly Flavour[]): string[] {
  let names = aptSearchNames(imagePattern(suite, flavours), ctx);
  if (names.length === 0 && ctx === HOST_APT) {
    aptUpdate(); // fresh machine: package lists not downloaded yet
    names = aptSearchNames(imagePattern(suite, flavours), ctx);
  }
  return names;
}

/** Fill in each listing's compiler: the headers package's gcc dependency (one apt-cache call). */
export function addCompilers(list: ReleaseListing[], ctx: AptContext): void {
  const stanzas = aptShow(
    list.map((r) => `linux-headers-${r.release}`),
    ctx,
  );
  for (const r of list) {
    const s = stanzas.find(
      (x) => x.package === `linux-headers-${r.release}` && x.version === r.debianVersion,
    );
    const cc = s ? compilerFromDepends(s.depends) : undefined;
    if (cc) Object.assign(r, { compiler: cc, compilerFrom: 'depends' as const });
  }
}

export interface ListOptions {
  suites?: readonly Suite[];
  flavours?: readonly Flavour[];
  /** download Suture's own suite indexes again first (the host's lists stay the admin's business) */
  refresh?: boolean;
}

/** Every targetable release of the given suites and flavours with Debian version and compiler. */
export async function listReleases(opts: ListOptions = {}): Promise<ReleaseListing[]> {
  const flavours = opts.flavours ?? FLAVOURS;
  const out: ReleaseListing[] = [];
  for (const suite of opts.suites ?? SUITES) {
    const ctx = await aptFor(suite, { refresh: opts.refresh === true });
    const list = releasesFromMadison(aptMadison(imageNames(suite, ctx, flavours), ctx), suite).filter((r) =>
      flavours.includes(r.flavour),
    );
    addCompilers(list, ctx);
    for (const r of list) r.cached = isCached(r.release);
    out.push(...list);
  }
  return out;
}

/** Resolve `release` to its Debian version and packages, or throw a diagnostic. */
export async function resolveRelease(
  release: string,
): Promise<{ resolved: ResolvedRelease; apt: AptContext }> {
  const name = parseRelease(release);
  const pk = packagesFor(release);
  const names = [pk.image, pk.headers, pk.dbg, pk.source];
  let ctx = await aptFor(name.suite);
  let lines = aptMadison(names, ctx);
  if (!lines.some((l) => l.package === pk.image)) {
    // stale lists: refresh once, then decide
    if (ctx === HOST_APT) aptUpdate();
    else ctx = await aptFor(name.suite, { refresh: true });
    lines = aptMadison(names, ctx);
  }
  const hasImage = lines.some((l) => l.package === pk.image);
  const known = hasImage ? [] : await listReleases({ suites: [name.suite] });
  return { resolved: resolveFromMadison(release, lines, known, ctx), apt: ctx };
}

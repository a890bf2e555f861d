/*
 * Release names as `uname -r` prints them on Debian, parsed into what they say about the kernel.
 *
 * Debian has named its kernel ABIs two ways:
 *   6.1.0-53-cloud-amd64         Debian 12's own 6.1 line: <series>.0-<abi>-<flavour>
 *   6.12.117+deb12-cloud-amd64   6.12 on Debian 12 (bookworm): <upstream>+deb12-<flavour>
 *   6.12.115+deb13.1-amd64       6.12 on Debian 13 (trixie): <upstream>+deb13[.<n>]-<flavour>, where .<n>
 *                                is an ABI bump within one upstream version (a second Debian upload)
 * The name alone gives the series, the suite whose archive carries it, the flavour and the ABI; the
 * Debian version (6.12.117-1~deb12u1) comes from the archive (releases.ts).
 */
import { fail } from '../diagnostic.js';

export const SUITES = ['bookworm', 'trixie'] as const;
export type Suite = (typeof SUITES)[number];

/** The flavours Suture targets: the cloud kernel and the generic one most installs run. */
export const FLAVOURS = ['cloud-amd64', 'amd64'] as const;
export type Flavour = (typeof FLAVOURS)[number];

/** Debian's release number of each suite, as the `+debN` of 6.12 ABI names spells it. */
export const SUITE_NUMBER: Record<Suite, number> = { bookworm: 12, trixie: 13 };

export interface ReleaseName {
  release: string;
  /** `6.1`, `6.12` */
  series: string;
  /** the suite whose archive carries the packages */
  suite: Suite;
  flavour: Flavour;
  /** the ABI part of the name: `53` (6.1.0-53-…), `117+deb12`, `115+deb13.1` */
  abi: string;
  /** the upstream version when the name carries it (the 6.12 scheme): `6.12.117`; else undefined */
  upstream?: string;
  /** numbers that order releases of one series and suite (ABI, or upstream sublevel and ABI bump) */
  order: number[];
}

export function isSuite(s: string): s is Suite {
  return (SUITES as readonly string[]).includes(s);
}

export function isFlavour(s: string): s is Flavour {
  return (FLAVOURS as readonly string[]).includes(s);
}

const OLD = /^(\d+\.\d+)\.0-(\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/;
const NEW = /^((\d+\.\d+)\.(\d+))\+deb(\d+)(?:\.(\d+))?-([a-z0-9]+(?:-[a-z0-9]+)*)$/;

function badRelease(release: string, why: string): never {
  return fail('KERNEL-BAD-RELEASE', `\`${release}\` is not a Debian kernel release Suture targets`, {
    why,
    hint: 'for example 6.1.0-53-cloud-amd64, 6.12.117+deb12-cloud-amd64 or 6.12.117+deb13-amd64; `suture kernel list` shows the available ones',
  });
}

function checkFlavour(release: string, flavour: string): Flavour {
  if (!isFlavour(flavour)) {
    badRelease(
      release,
      `flavour \`${flavour}\` is not one Suture targets (${FLAVOURS.join(', ')}); rt and other flavours are not supported`,
    );
  }
  return flavour;
}

/** Parse-don't-validate a release string. */
export function parseRelease(release: string): ReleaseName {
  const old = OLD.exec(release);
  if (old?.[1] && old[2] && old[3]) {
    const abi = Number(old[2]);
    return {
      release,
      series: old[1],
      suite: 'bookworm',
      flavour: checkFlavour(release, old[3]),
      abi: old[2],
      order: [abi],
    };
  }
  const m = NEW.exec(release);
  if (m?.[1] && m[2] && m[3] && m[4] && m[6]) {
    const deb = Number(m[4]);
    const suite = (Object.keys(SUITE_NUMBER) as Suite[]).find((s) => SUITE_NUMBER[s] === deb);
    if (!suite)
      badRelease(release, `+deb${deb} is not a Debian release Suture knows (bookworm 12, trixie 13)`);
    const bump = m[5] === undefined ? 0 : Number(m[5]);
    return {
      release,
      series: m[2],
      suite,
      flavour: checkFlavour(release, m[6]),
      abi: release.slice(m[2].length + 1, release.length - m[6].length - 1),
      upstream: m[1],
      order: [Number(m[3]), bump],
    };
  }
  return badRelease(
    release,
    'a release looks like `uname -r` on Debian: <series>.0-<abi>-<flavour> or <upstream>+deb<N>[.<k>]-<flavour>',
  );
}

/** The four packages of a release: image, headers, debug symbols, and the source of its series. */
export interface KernelPackages {
  image: string;
  headers: string;
  dbg: string;
  source: string;
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

/** `a` before `b`: suite, then series, then flavour, then ABI order. */
export function compareReleases(a: string, b: string): number {
  const x = parseRelease(a);
  const y = parseRelease(b);
  if (x.suite !== y.suite) return SUITE_NUMBER[x.suite] - SUITE_NUMBER[y.suite];
  if (x.series !== y.series) return compareNumbers(x.series.split('.'), y.series.split('.'));
  if (x.flavour !== y.flavour) return FLAVOURS.indexOf(x.flavour) - FLAVOURS.indexOf(y.flavour);
  return compareNumbers(x.order, y.order);
}

function compareNumbers(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = Number(a[i] ?? -1) - Number(b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The known releases closest to `wanted` (a valid name the archive does not have): same suite, series
 * and flavour first, nearest ABI first; then the same flavour elsewhere. At most `n`.
 */
export function closestReleases(wanted: string, known: string[], n = 5): string[] {
  const w = parseRelease(wanted);
  const score = (r: string): number[] => {
    const k = parseRelease(r);
    const distance =
      Math.abs((k.order[0] ?? 0) - (w.order[0] ?? 0)) * 100 + Math.abs((k.order[1] ?? 0) - (w.order[1] ?? 0));
    return [
      k.flavour === w.flavour ? 0 : 1,
      k.suite === w.suite ? 0 : 1,
      k.series === w.series ? 0 : 1,
      k.series === w.series ? distance : 0,
    ];
  };
  return [...known].sort((a, b) => compareNumbers(score(a), score(b)) || compareReleases(b, a)).slice(0, n);
}

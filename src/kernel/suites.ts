/*
 * Which apt answers for a suite: the host's own, or Suture's own index of a suite the host does not carry.
 *
 * On a Debian 12 host the host's apt knows bookworm (6.1.0-N and 6.12.P+deb12 kernels) but not trixie
 * (6.12.P+deb13). For such a suite Suture keeps its own apt configuration inside the cache and never
 * touches the host's sources.list:
 *
 *   apt/<suite>/current        symlink → index.@<tag>: the index in use
 *   apt/<suite>/index.@<tag>/  sources.list (signed-by Debian's archive keyring), an empty dpkg status,
 *                              lists/ (the signed InRelease and Packages files apt verified), cache/
 *
 * An index is downloaded with `apt-get update` into a fresh index.@<tag> and published by swapping the
 * `current` symlink only when apt verified every InRelease against the keyring, printed no warning and
 * exited 0. An index whose signature fails is refused and deleted: nothing of it is ever used.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { rename, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fail } from '../diagnostic.js';
import { type AptContext, HOST_APT } from './apt.js';
import { cacheRoot, withLock } from './cache.js';
import type { Suite } from './release-name.js';

/** Debian's archive keyring (package debian-archive-keyring): the trust anchor of every index. */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** One `deb` line: an archive URI and a distribution in it (main only). */
export interface AptSourceLine {
  uri: string;
  dist: string;
}

/** Where a suite's packages come from and which keyring must have signed its index. */
export interface SuiteSources {
  suite: string;
  lines: AptSourceLine[];
  keyring: string;
}

/** The Debian archive lines that carry a suite's kernels (release, updates and security). */
export function debianSources(suite: Suite, keyring = DEBIAN_KEYRING): SuiteSources {
  return {
    suite,
    keyring,
    lines: [
      { uri: 'http://deb.debian.org/debian', dist: suite },
      { uri: 'http://deb.debian.org/debian', dist: `${suite}-updates` },
      { uri: 'http://deb.debian.org/debian-security', dist: `${suite}-security` },
    ],
  };
}

/** The host's Debian codename (`/etc/os-release` VERSION_CODENAME), or undefined. */
export function hostCodename(osRelease = '/etc/os-release'): string | undefined {
  try {
    return /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync(osRelease, 'utf8'))?.[1]?.replace(/"/g, '');
  } catch {
    return undefined;
  }
}

function sourcesList(src: SuiteSources): string {
  return src.lines.map((l) => `deb [signed-by=${src.keyring}] ${l.uri} ${l.dist} main\n`).join('');
}

/** The `-o` options that make apt use only the index in `dir` (no host source, state or preference). */
export function aptOptions(dir: string): string[] {
  const o = (k: string, v: string) => ['-o', `${k}=${v}`];
  return [
    ...o('Dir::Etc::SourceList', join(dir, 'sources.list')),
    ...o('Dir::Etc::SourceParts', '/dev/null'),
    ...o('Dir::Etc::Preferences', '/dev/null'),
    ...o('Dir::Etc::PreferencesParts', '/dev/null'),
    ...o('Dir::State::Lists', join(dir, 'lists')),
    ...o('Dir::State::status', join(dir, 'status')),
    ...o('Dir::Cache', join(dir, 'cache')),
    ...o('APT::Architecture', 'amd64'),
    ...o('APT::Architectures', 'amd64'),
    ...o('APT::Sandbox::User', 'root'),
  ];
}

function listFileStem(l: AptSourceLine): string {
  // apt's list file names: `deb.debian.org_debian_dists_trixie_`, `_srv_repo_dists_test_` for file:/srv/repo
  const path = l.uri.startsWith('file:')
    ? l.uri.replace(/^file:\/*/, '/')
    : l.uri.replace(/^[a-z]+:\/\//, '');
  return `${path.replace(/\/+$/, '')}/dists/${l.dist}/`.replace(/\//g, '_');
}

/**
 * Download `src`'s index into `dir` (fresh) with `apt-get update`. Throws APT-INDEX-UNVERIFIED unless
 * apt verified every line's InRelease against `src.keyring`, exited 0 and warned about nothing.
 */
export function downloadIndex(src: SuiteSources, dir: string): void {
  for (const d of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'sources.list'), sourcesList(src));
  writeFileSync(join(dir, 'status'), '');
  const r = spawnSync('apt-get', [...aptOptions(dir), 'update', '-q'], { encoding: 'utf8' });
  if (r.error) fail('APT-UNAVAILABLE', `cannot run apt-get: ${r.error.message}`);
  const complaints = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => /^(W|E|Err):?/.test(l.trim()) || /NO_PUBKEY|BADSIG|not signed|GPG error/.test(l));
  const lists = readdirSync(join(dir, 'lists'));
  const unsigned = src.lines.filter((l) => !lists.includes(`${listFileStem(l)}InRelease`));
  if (r.status !== 0 || complaints.length > 0 || unsigned.length > 0) {
    fail('APT-INDEX-UNVERIFIED', `the ${src.suite} index failed its verification; nothing was kept`, {
      detail: [
        ...complaints.slice(0, 12),
        ...unsigned.map((l) => `no verified InRelease for ${l.uri} ${l.dist}`),
        `apt-get update exited ${r.status}`,
      ],
      why: `every package Suture downloads is checked against SHA256 sums from an index signed by ${src.keyring}; an index that fails its signature could name any bytes`,
      hint: 'check the network (a captive portal or proxy can rewrite files) and that debian-archive-keyring is installed and current, then try again',
    });
  }
}

function tag(): string {
  return `${process.pid}.${randomBytes(4).toString('hex')}`;
}

/** The apt context of the published index in `base`, or undefined if there is none. */
export function publishedIndex(base: string, label: string): AptContext | undefined {
  const cur = join(base, 'current');
  if (!existsSync(join(cur, 'lists'))) return undefined;
  return { label, options: aptOptions(realpathSync(cur)) };
}

/**
 * The index of `src` kept in `base`: the published one, or (none yet, or `refresh`) a freshly
 * downloaded and verified one, published atomically. Serialised by a cache lock.
 */
export async function ensureIndex(
  src: SuiteSources,
  base: string,
  opts: { refresh?: boolean; root?: string } = {},
): Promise<AptContext> {
  const label = `Suture's ${src.suite} index (${base})`;
  const have = publishedIndex(base, label);
  if (have && !opts.refresh) return have;
  mkdirSync(base, { recursive: true });
  return withLock(opts.root ?? cacheRoot(), `apt-${src.suite}`, async () => {
    // another process may have published it while this one waited for the lock
    const now = publishedIndex(base, label);
    if (now && !opts.refresh) return now;
    const dir = join(base, `index.@${tag()}`);
    try {
      downloadIndex(src, dir);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    const link = join(base, `current.${tag()}`);
    await symlink(basename(dir), link);
    await rename(link, join(base, 'current'));
    const keep = realpathSync(join(base, 'current'));
    for (const f of readdirSync(base)) {
      const p = join(base, f);
      if ((f.startsWith('index.@') || f.startsWith('current.')) && p !== keep)
        await rm(p, { recursive: true, force: true });
    }
    return { label, options: aptOptions(keep) };
  });
}

/** The apt that answers for `suite`: the host's if it is the host's own suite, else Suture's own index. */
export async function aptFor(suite: Suite, opts: { refresh?: boolean } = {}): Promise<AptContext> {
  if (hostCodename() === suite) return HOST_APT;
  return ensureIndex(debianSources(suite), join(cacheRoot(), 'apt', suite), opts);
}

/*
 * The Debian archive as apt sees it: which package versions exist and where their .deb files live.
 *
 * Suture never trusts a download by name: apt's metadata (signed Release → Packages) gives each .deb's
 * URI, size and SHA256, and the cache verifies every byte against that before using it. This file
 * runs apt's own tools (`apt-cache madison`, `apt-cache search`, `apt-get --print-uris download`) and
 * parses their output into values; the parsers are pure so they can be tested on captured output.
 */
import { spawnSync } from 'node:child_process';
import { fail } from '../diagnostic.js';

/** One version of one package, as `apt-cache madison` lists it. */
export interface AptVersion {
  package: string;
  version: string;
  /** the archive line, e.g. `http://deb.debian.org/debian-security bookworm-security/main amd64 Packages` */
  origin: string;
}

/** Where to get one .deb and what its bytes must hash to. */
export interface DebLocation {
  package: string;
  version: string;
  uri: string;
  filename: string;
  size: number;
  sha256: string;
}

/** Parse `apt-cache madison P...` output: `pkg | version | origin` per line. Unparseable lines are skipped. */
export function parseMadison(text: string): AptVersion[] {
  const out: AptVersion[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split('|').map((s) => s.trim());
    if (parts.length !== 3) continue;
    const [pkg, version, origin] = parts as [string, string, string];
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(pkg) || !/^[0-9][A-Za-z0-9.+~:-]*$/.test(version)) continue;
    if (!origin.endsWith('Packages')) continue; // `Sources` lines are not binary packages
    out.push({ package: pkg, version, origin });
  }
  return out;
}

/**
 * Parse `apt-get --print-uris download P=V...`: `'URI' FILENAME SIZE SHA256:HEX` per line.
 * A line that names a package but lacks a SHA256 is an error: Suture will not download unverifiable bytes.
 */
export function parsePrintUris(text: string): DebLocation[] {
  const out: DebLocation[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith("'")) continue;
    const m = /^'([^']+)'\s+(\S+)\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (!m) fail('APT-UNPARSEABLE', `cannot parse apt's download line: ${line}`);
    const [, uri, filename, size, hash] = m as unknown as [string, string, string, string, string];
    const sha = /^SHA256:([0-9a-f]{64})$/.exec(hash);
    if (!sha?.[1]) {
      fail('APT-NO-SHA256', `apt has no SHA256 for ${filename}`, {
        why: 'every downloaded package is verified against the SHA256 in the signed archive metadata',
        hint: 'run `apt-get update` so the package lists carry SHA256 sums',
      });
    }
    const fm = /^([^_]+)_([^_]+)_[^_]+\.deb$/.exec(filename);
    if (!fm?.[1] || !fm[2]) fail('APT-UNPARSEABLE', `unexpected .deb file name from apt: ${filename}`);
    out.push({
      package: fm[1],
      version: decodeURIComponent(fm[2]),
      uri,
      filename,
      size: Number(size),
      sha256: sha[1],
    });
  }
  return out;
}

/** Package names from `apt-cache search --names-only RE` output (`name - description`). */
export function parseSearchNames(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) - /.exec(line);
    if (m?.[1]) out.push(m[1]);
  }
  return out;
}

/**
 * Which apt to ask: the host's own configuration (no options), or Suture's own one for a suite the
 * host does not carry (suites.ts), given as `-o` options that replace every host source and state.
 */
export interface AptContext {
  /** what to call it in messages, e.g. `the host's apt` or `Suture's trixie index` */
  label: string;
  options: string[];
}

export const HOST_APT: AptContext = { label: "the host's apt", options: [] };

function run(cmd: string, args: string[], ctx: AptContext = HOST_APT): string {
  const r = spawnSync(cmd, [...ctx.options, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) {
    fail('APT-UNAVAILABLE', `cannot run ${cmd}: ${r.error.message}`, {
      why: 'Suture reads the Debian archive through apt',
      hint: 'run on Debian 12 (bookworm) with apt installed',
    });
  }
  if (r.status !== 0) {
    fail('APT-FAILED', `\`${cmd} ${args.join(' ')}\` failed (exit ${r.status})`, {
      detail: (r.stderr || r.stdout).trim().split('\n').slice(-10),
      hint:
        ctx === HOST_APT
          ? 'check /etc/apt/sources.list and the network, then `apt-get update`'
          : `${ctx.label}: check the network; the index is refreshed by the next \`suture kernel list\``,
    });
  }
  return r.stdout;
}

let updated = false;

/** Run `apt-get update` at most once per process (needs root). */
export function aptUpdate(): void {
  if (updated) return;
  updated = true;
  run('apt-get', ['update', '-qq']);
}

export function aptMadison(packages: string[], ctx: AptContext = HOST_APT): AptVersion[] {
  if (packages.length === 0) return [];
  return parseMadison(run('apt-cache', ['madison', ...packages], ctx));
}

export function aptSearchNames(regex: string, ctx: AptContext = HOST_APT): string[] {
  return parseSearchNames(run('apt-cache', ['search', '--names-only', regex], ctx));
}

/** One package version's control fields as `apt-cache show` prints them. */
export interface AptStanza {
  package: string;
  version: string;
  depends: string;
}

/** Parse `apt-cache show` output into stanzas (Package, Version, Depends). */
export function parseShow(text: string): AptStanza[] {
  const out: AptStanza[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const field = (f: string) => new RegExp(`^${f}: (.*)$`, 'm').exec(block)?.[1]?.trim();
    const pkg = field('Package');
    const version = field('Version');
    if (pkg && version) out.push({ package: pkg, version, depends: field('Depends') ?? '' });
  }
  return out;
}

export function aptShow(packages: string[], ctx: AptContext = HOST_APT): AptStanza[] {
  if (packages.length === 0) return [];
  return parseShow(run('apt-cache', ['show', ...packages], ctx));
}

export function aptPrintUris(
  pins: { package: string; version: string }[],
  ctx: AptContext = HOST_APT,
): DebLocation[] {
  const text = run(
    'apt-get',
    ['--print-uris', '-qq', 'download', ...pins.map((p) => `${p.package}=${p.version}`)],
    ctx,
  );
  const locs = parsePrintUris(text);
  for (const p of pins) {
    if (!locs.some((l) => l.package === p.package && l.version === p.version)) {
      fail('APT-NO-URI', `apt gave no download location for ${p.package}=${p.version}`, {
        hint: 'run `apt-get update`; the version may have left the mirror',
      });
    }
  }
  return locs;
}

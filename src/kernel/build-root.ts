/*
 * A minimal build root of a Debian suite: the compiler and tools kbuild needs, for kernels whose
 * compiler the host lacks (trixie's gcc-14 on a Debian 12 host).
 *
 * Made with `debootstrap --variant=minbase --include=<packages>` (debootstrap checks the suite's
 * Release signature against Debian's archive keyring and every package's SHA256), cached as a
 * content-addressed entry `entries/root-<suite>-<key>` (key = recipe, suite, packages, mirror, wanted gcc), like the
 * kernel artifacts. It is built in `entries/.staging/` and renamed into place only when debootstrap
 * finished and the compiler inside answers; `.suture-root.json` inside records what it is. A build
 * interrupted half way (killed, out of disk) therefore never has the entry's name: the next holder of
 * the entry's lock removes its leftovers and builds it again. debootstrap runs in its own mount
 * namespace (`unshare --mount`), so the /proc and /sys it mounts inside die with it, even on a kill.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fail } from '../diagnostic.js';
import { cacheRoot, ensureEntry, findEntry } from './cache.js';
import { type CompilerId, probeCompiler } from './compiler.js';
import type { Suite } from './release-name.js';
import { DEBIAN_KEYRING } from './suites.js';

/** Bumped whenever the recipe changes, so older roots are not reused. */
export const ROOT_RECIPE = 1;

export const ROOT_MIRROR = 'http://deb.debian.org/debian';

/** What kbuild needs to prepare a tree and compile in-tree objects and external modules. */
export function rootPackages(gccMajor: number): string[] {
  return [
    `gcc-${gccMajor}`,
    'gcc',
    'libc6-dev',
    'make',
    'bison',
    'flex',
    'bc',
    'libelf-dev',
    'libssl-dev',
    'openssl',
    'dwarves',
    'kmod',
    'binutils',
    'perl',
    // 6.12's resolve_btfids build generates libbpf headers with a Python script
    'python3',
  ];
}

export interface RootSpec {
  suite: Suite | string;
  packages: string[];
  mirror: string;
  /**
   * the compiler build the root must have (`(Debian 14.2.0-19) 14.2.0`): part of the address, so a kernel
   * built by a newer gcc gets a newer root, and a root whose gcc is another build is never published
   */
  compiler?: string;
}

/** The content address of a root: recipe, suite, package set and mirror. */
export function rootEntryName(spec: RootSpec): string {
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        recipe: ROOT_RECIPE,
        suite: spec.suite,
        packages: [...spec.packages].sort(),
        mirror: spec.mirror,
        ...(spec.compiler ? { compiler: spec.compiler } : {}),
      }),
    )
    .digest('hex')
    .slice(0, 24);
  return `root-${spec.suite}-${key}`;
}

export const ROOT_MARKER = '.suture-root.json';

const RootRecord = z.object({
  recipe: z.number(),
  suite: z.string(),
  packages: z.array(z.string()),
  mirror: z.string(),
  compiler: z.string(),
  ms: z.number(),
});
export type RootRecord = z.infer<typeof RootRecord>;

/** Fills an empty directory with a root (debootstrap by default; tests pass their own). */
export type Bootstrapper = (spec: RootSpec, dir: string, onLine: (l: string) => void) => Promise<void>;

/** debootstrap, in a private mount namespace, downloads cached in `<cache>/debootstrap/<suite>`. */
export function debootstrap(cache = cacheRoot()): Bootstrapper {
  return (spec, dir, onLine) => {
    const debs = join(cache, 'debootstrap', spec.suite);
    mkdirSync(debs, { recursive: true });
    const args = [
      '--mount',
      '--propagation',
      'private',
      'debootstrap',
      '--variant=minbase',
      `--keyring=${DEBIAN_KEYRING}`,
      `--cache-dir=${debs}`,
      `--include=${spec.packages.join(',')}`,
      spec.suite,
      dir,
      spec.mirror,
    ];
    return new Promise<void>((resolve, reject) => {
      const p = spawn('unshare', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const tail: string[] = [];
      const onData = (d: Buffer) => {
        for (const line of d.toString().split('\n')) {
          if (!line) continue;
          tail.push(line);
          if (tail.length > 20) tail.shift();
          onLine(line);
        }
      };
      p.stdout.on('data', onData);
      p.stderr.on('data', onData);
      p.on('error', reject);
      p.on('close', (code) =>
        code === 0
          ? resolve()
          : reject(Object.assign(new Error(`debootstrap exited ${code}`), { tail: [...tail] })),
      );
    }).catch((e: Error & { tail?: string[] }) =>
      fail('BUILD-ROOT-FAILED', `debootstrap of a ${spec.suite} build root failed`, {
        detail: [e.message, ...(e.tail ?? [])],
        why: 'the kernel needs a compiler the host does not have; Suture builds it a root of its own suite',
        hint: 'install debootstrap (`apt-get install debootstrap`), check the network, and run the command again (a half-built root is never used)',
      }),
    );
  };
}

/** The record of a published root, or undefined if `dir` is not one. */
export function readRootRecord(dir: string): RootRecord | undefined {
  try {
    return RootRecord.parse(JSON.parse(readFileSync(join(dir, ROOT_MARKER), 'utf8')));
  } catch {
    return undefined;
  }
}

/** The command prefix that runs a program inside `root` (chroot only; enough for `--version`). */
export function chrootPrefix(root: string): string[] {
  return ['chroot', root];
}

export interface RootOptions {
  root?: string;
  bootstrap?: Bootstrapper;
  onLine?: (l: string) => void;
  /** how a compiler inside the root is asked its version (default: chroot) */
  probe?: (dir: string) => CompilerId | undefined;
}

/** Is the root of `spec` already in the cache (published)? */
export function cachedBuildRoot(spec: RootSpec, root = cacheRoot()): string | undefined {
  const dir = findEntry(root, rootEntryName(spec));
  return dir && readRootRecord(dir) ? dir : undefined;
}

/**
 * Make sure the build root of `spec` is in the cache and return its directory. Idempotent; a root
 * interrupted half way is removed and made again; concurrent callers build it once.
 */
export async function ensureBuildRoot(spec: RootSpec, opts: RootOptions = {}): Promise<string> {
  const root = opts.root ?? cacheRoot();
  const name = rootEntryName(spec);
  const dir = await ensureEntry(
    root,
    name,
    async (tmp) => {
      const t0 = performance.now();
      await (opts.bootstrap ?? debootstrap(root))(spec, tmp, opts.onLine ?? (() => undefined));
      const cc = (opts.probe ?? ((d) => probeCompiler('gcc', chrootPrefix(d))))(tmp);
      if (!cc) {
        fail('BUILD-ROOT-FAILED', `the ${spec.suite} build root has no working gcc`, {
          location: { file: tmp },
          hint: 'run the command again; the unfinished root is removed and made again',
        });
      }
      if (spec.compiler && cc.build !== spec.compiler) {
        fail(
          'KERNEL-COMPILER-MISMATCH',
          `the ${spec.suite} archive gives gcc \`${cc.build}\`, the kernel was built with \`${spec.compiler}\``,
          {
            why: 'a build root with another compiler build would compile code that differs from the shipped kernel’s',
            hint: `the ${spec.suite} archive no longer ships that compiler build; this kernel cannot be patched with a matching compiler`,
          },
        );
      }
      const rec: RootRecord = {
        recipe: ROOT_RECIPE,
        suite: spec.suite,
        packages: spec.packages,
        mirror: spec.mirror,
        compiler: cc.text,
        ms: Math.round(performance.now() - t0),
      };
      writeFileSync(join(tmp, ROOT_MARKER), `${JSON.stringify(rec, null, 2)}\n`);
    },
    { relocatable: true },
  );
  if (!existsSync(join(dir, ROOT_MARKER)))
    fail('BUILD-ROOT-FAILED', `cache entry ${name} is not a finished build root`, {
      location: { file: dir },
    });
  return dir;
}

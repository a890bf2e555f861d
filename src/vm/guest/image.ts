/*
 * The disk of a Debian guest for one target kernel, and a test's own copy of it.
 *
 * The base image is the guest root (root.ts) plus the kernel's modules (from the cached image
 * package's /lib/modules/<release>, with a modules.dep from the host's depmod), written into a raw
 * ext4 file by `mkfs.ext4 -d` (e2fsprogs: no loop mount, no root privileges beyond owning the tree).
 * It is a content-addressed cache entry `guest-image-<suite>-<key>` (key: the root's entry name, the
 * release, its build id, the recipe), built in staging and renamed into place when finished.
 *
 * A test never writes the base: it boots a qcow2 overlay (`qemu-img create -b base`) in its own
 * directory, which persists across the reboots of that test and is removed with it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../../diagnostic.js';
import type { RootSpec } from '../../kernel/build-root.js';
import { cacheRoot, ensureEntry } from '../../kernel/cache.js';
import type { KernelTarget } from '../../kernel/target.js';
import { ensureGuestRoot, guestRootEntryName, guestRootSpec } from './root.js';

export const GUEST_IMAGE_RECIPE = 1;
export const GUEST_IMAGE_FILE = 'root.img';
/** free space left in the image for what tests install (Suture, patches, journals) */
const HEADROOM_MB = 768;

export interface GuestImage {
  /** the raw ext4 base image (never written by a boot) */
  path: string;
  /** ms it took to make (copy + modules + mkfs), or 0 when it came from the cache */
  builtMs: number;
}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0)
    fail('VM-GUEST-IMAGE', `${what} failed`, {
      detail: [`${cmd} ${args.join(' ')}`, (r.stderr ?? String(r.error)).trim()].filter(Boolean),
      hint:
        cmd === 'qemu-img'
          ? 'apt-get install qemu-utils'
          : 'apt-get install e2fsprogs kmod; run the command again (an unfinished image is never used)',
    });
  return r.stdout;
}

export function guestImageEntryName(kernel: KernelTarget, spec: RootSpec): string {
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        recipe: GUEST_IMAGE_RECIPE,
        root: guestRootEntryName(spec),
        release: kernel.release,
        buildId: kernel.buildId,
        headroom: HEADROOM_MB,
      }),
    )
    .digest('hex')
    .slice(0, 24);
  return `guest-image-${spec.suite}-${key}`;
}

async function buildImage(kernel: KernelTarget, rootDir: string, out: string): Promise<void> {
  const tree = join(out, 'tree');
  run('cp', ['-a', `${rootDir}/.`, tree], 'copying the guest root');
  const mods = join(tree, 'lib', 'modules', kernel.release);
  mkdirSync(join(tree, 'lib', 'modules'), { recursive: true });
  run('cp', ['-a', kernel.modulesDir, mods], 'copying the kernel modules');
  run('depmod', ['-b', tree, kernel.release], 'depmod for the guest');
  const bytes = Number(run('du', ['-sb', tree], 'measuring the guest tree').split(/\s/)[0]);
  const sizeMb = Math.ceil(bytes / (1 << 20) / 0.85) + HEADROOM_MB;
  run(
    'mkfs.ext4',
    [
      '-q',
      '-F',
      '-L',
      'suture-root',
      '-E',
      'root_owner=0:0',
      '-d',
      tree,
      join(out, GUEST_IMAGE_FILE),
      `${sizeMb}M`,
    ],
    'mkfs.ext4 -d',
  );
  await rm(tree, { recursive: true, force: true });
}

/** The base disk image of a Debian guest for `kernel`, made (and the root too) on first use. */
export async function ensureGuestImage(
  kernel: KernelTarget,
  opts: { spec?: RootSpec; onLine?: (l: string) => void; root?: string } = {},
): Promise<GuestImage> {
  const spec = opts.spec ?? guestRootSpec();
  const cache = opts.root ?? cacheRoot();
  const rootDir = await ensureGuestRoot(spec, opts.onLine, cache);
  let builtMs = 0;
  const dir = await ensureEntry(
    cache,
    guestImageEntryName(kernel, spec),
    async (tmp) => {
      const t0 = performance.now();
      await buildImage(kernel, rootDir, tmp);
      builtMs = Math.round(performance.now() - t0);
      writeFileSync(join(tmp, 'image.json'), `${JSON.stringify({ release: kernel.release, builtMs })}\n`);
    },
    { relocatable: true },
  );
  const path = join(dir, GUEST_IMAGE_FILE);
  if (!existsSync(path)) fail('VM-GUEST-IMAGE', `cache entry ${dir} has no ${GUEST_IMAGE_FILE}`);
  return { path, builtMs };
}

/** A copy-on-write disk for one test (`<dir>/disk.qcow2` over `base`): survives reboots, not the test. */
export function createOverlay(base: string, dir: string): string {
  if (!statSync(base).isFile()) fail('VM-GUEST-IMAGE', `${base} is not a disk image`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'disk.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, path], 'qemu-img create');
  return path;
}

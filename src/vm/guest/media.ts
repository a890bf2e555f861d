/*
 * Files for a Debian guest: a small read-only ext4 image the guest sees as /dev/vdb.
 *
 * The guest's disk is an overlay of a cached base (image.ts), so a test cannot drop host files into
 * it before boot, and a minbase Debian has no HTTP client: a release tarball reaches the guest the
 * way it would on a USB stick. `mkfs.ext4 -d` writes the image without a loop mount.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fail } from '../../diagnostic.js';

/** Where the guest mounts the media (see `mountMedia`). */
export const MEDIA_MOUNT = '/mnt/media';

/** An ext4 image `<dir>/media.img` holding `files` at its top level. */
export function makeMedia(files: readonly string[], dir: string): string {
  const tree = join(dir, 'media');
  mkdirSync(tree, { recursive: true });
  let bytes = 0;
  for (const f of files) {
    copyFileSync(f, join(tree, basename(f)));
    bytes += statSync(f).size;
  }
  const img = join(dir, 'media.img');
  const mb = Math.ceil((bytes * 1.1) / (1 << 20)) + 16;
  const r = spawnSync('mkfs.ext4', ['-q', '-F', '-d', tree, img, `${mb}M`], { encoding: 'utf8' });
  if (r.status !== 0)
    fail('VM-GUEST-MEDIA', 'mkfs.ext4 -d for the guest media failed', { detail: [r.stderr.trim()] });
  return img;
}

/** The guest command that mounts the media read-only. */
export const MOUNT_MEDIA = `mkdir -p ${MEDIA_MOUNT} && mount -o ro /dev/vdb ${MEDIA_MOUNT}`;

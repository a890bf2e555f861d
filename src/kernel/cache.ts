/*
 * The content-addressed cache: where target kernels' artifacts live, and how they get there safely.
 *
 * Layout under SUTURE_CACHE (default ~/.cache/suture):
 *
 *   blobs/sha256/<hex>          verified downloads (.deb files), named by their SHA256
 *   blobs/partial/<hex>.part    a download in progress; resumed with an HTTP range request after a kill
 *   entries/<name>              extracted or prepared trees (`deb-<sha>`, `tree-<key>`); immutable once there
 *   entries/.staging/           trees being built; never read by anyone
 *   kernels/<release>/          one target: links to its entries and `target.json`, written last
 *   locks/                      proper-lockfile locks, one per blob, entry and release
 *
 * The rules that make it safe under kills and concurrent `suture` processes:
 * - Nothing is ever written at its final name. A blob is streamed to a partial file, its size and SHA256
 *   checked against apt's signed metadata, then renamed; an entry is built in a staging directory and
 *   renamed (or, for a source tree whose build files record absolute paths, built at a unique name and
 *   published by atomically replacing a symlink). A half-written blob or entry therefore never exists
 *   under a name a reader looks at.
 * - Whoever creates a name holds its lock; a second process waits, then finds the finished result.
 *   A lock whose holder died goes stale and is taken over; its leftovers (partials, staging trees) are
 *   resumed or removed by the new holder.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  statSync,
} from 'node:fs';
import { open, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';
import { fail, SutureError } from '../diagnostic.js';

/**
 * The cache root: SUTURE_CACHE, or ~/.cache/suture when it is unset or empty. The one place that
 * decides it — the kernel, VM and build caches and the benchmarks all ask here.
 */
export function cacheRoot(): string {
  const env = process.env.SUTURE_CACHE;
  return env && env.length > 0 ? env : join(homedir(), '.cache', 'suture');
}

/** Run `fn` with the cache root set to `root` (SUTURE_CACHE), restoring the previous value after. */
export async function withCacheRoot<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.SUTURE_CACHE;
  process.env.SUTURE_CACHE = root;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.SUTURE_CACHE;
    else process.env.SUTURE_CACHE = saved;
  }
}

export function blobPath(root: string, sha256: string): string {
  return join(root, 'blobs', 'sha256', sha256);
}

export function entryPath(root: string, name: string): string {
  return join(root, 'entries', name);
}

export function kernelDir(root: string, release: string): string {
  return join(root, 'kernels', release);
}

function mkdirs(...dirs: string[]): void {
  for (const d of dirs) mkdirSync(d, { recursive: true });
}

function tag(): string {
  return `${process.pid}.${randomBytes(4).toString('hex')}`;
}

/** How long a dead process's lock lives: 20 s, or SUTURE_LOCK_STALE_MS (at least 2 s). */
export function defaultStaleMs(): number {
  const v = Number(process.env.SUTURE_LOCK_STALE_MS);
  return Number.isFinite(v) && v >= 2000 ? v : 20_000;
}

/**
 * Run `fn` holding the cache lock called `name`. Waits (polling) while another live process holds it;
 * a lock left by a killed process goes stale after `staleMs` and is taken over.
 */
export async function withLock<T>(
  root: string,
  name: string,
  fn: () => Promise<T>,
  staleMs = defaultStaleMs(),
): Promise<T> {
  const dir = join(root, 'locks');
  mkdirs(dir);
  const target = join(dir, name.replace(/[^A-Za-z0-9._-]/g, '_'));
  let compromised: Error | undefined;
  const release = await lockfile.lock(target, {
    realpath: false,
    stale: staleMs,
    update: Math.max(1000, Math.floor(staleMs / 4)),
    retries: { forever: true, factor: 1.3, minTimeout: 100, maxTimeout: 1500 },
    onCompromised: (e) => {
      compromised = e;
    },
  });
  try {
    const r = await fn();
    if (compromised) {
      fail('CACHE-LOCK-LOST', `lost the cache lock ${name}: ${compromised.message}`, {
        why: 'another process took the lock over while this one was writing',
        hint: 'run the command again; the cache entry will be verified or redone',
      });
    }
    return r;
  } finally {
    await release().catch(() => undefined);
  }
}

export interface BlobSpec {
  /** http(s) or file URI */
  uri: string;
  sha256: string;
  size: number;
  /** what to call it in messages (e.g. the .deb file name) */
  name: string;
}

export type BytesProgress = (done: number, total: number) => void;

async function hashFile(path: string, hash: ReturnType<typeof createHash>): Promise<number> {
  let n = 0;
  await pipeline(
    createReadStream(path),
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        n += chunk.length;
        cb();
      },
    }),
  );
  return n;
}

async function openSource(
  uri: string,
  from: number,
): Promise<{ body: Readable; start: number; total?: number }> {
  if (uri.startsWith('file:')) {
    const path = fileURLToPath(uri);
    if (!existsSync(path)) fail('BLOB-SOURCE-MISSING', `${path} does not exist`);
    return { body: createReadStream(path, { start: from }), start: from };
  }
  if (!/^https?:\/\//.test(uri)) fail('BLOB-BAD-URI', `cannot download from ${uri}`);
  let res: Response;
  try {
    res = await fetch(uri, { headers: from > 0 ? { Range: `bytes=${from}-` } : {} });
  } catch (e) {
    fail('DOWNLOAD-FAILED', `cannot reach ${uri}: ${(e as Error).message}`, {
      hint: 'check the network or proxy, then run the command again; finished downloads are kept',
    });
  }
  if (!res.body || (res.status !== 200 && res.status !== 206)) {
    fail('DOWNLOAD-FAILED', `${uri}: HTTP ${res.status}`, {
      hint: 'run `apt-get update` (the package may have moved) and try again',
    });
  }
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  if (res.status === 206) {
    const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
    if (m && Number(m[1]) === from) return { body, start: from };
    body.destroy();
    return openSource(uri, 0);
  }
  return { body, start: 0 };
}

/**
 * Make sure the blob `spec.sha256` is in the cache and return its path. Downloads to a partial file,
 * resuming one left by a killed process, verifies size and SHA256, then renames into place.
 * A mismatch throws BLOB-CORRUPT and deletes the partial, so the next run starts clean.
 */
export async function ensureBlob(
  root: string,
  spec: BlobSpec,
  onBytes?: BytesProgress,
  staleMs?: number,
): Promise<string> {
  if (!/^[0-9a-f]{64}$/.test(spec.sha256)) fail('BLOB-BAD-HASH', `not a SHA256: ${spec.sha256}`);
  const final = blobPath(root, spec.sha256);
  if (existsSync(final)) return final;
  const partialDir = join(root, 'blobs', 'partial');
  mkdirs(join(root, 'blobs', 'sha256'), partialDir);
  return withLock(
    root,
    `blob-${spec.sha256}`,
    async () => {
      if (existsSync(final)) return final;
      const part = join(partialDir, `${spec.sha256}.part`);
      for (let attempt = 0; ; attempt++) {
        const hash = createHash('sha256');
        let have = 0;
        if (existsSync(part)) {
          if (statSync(part).size > spec.size) await unlink(part);
          else have = await hashFile(part, hash);
        }
        const src = await openSource(spec.uri, have);
        let done = src.start;
        // if the server ignored the range request, start over with a fresh hash
        const h = src.start === 0 ? createHash('sha256') : hash;
        onBytes?.(done, spec.size);
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            h.update(chunk);
            done += chunk.length;
            if (done > spec.size) {
              cb(
                new SutureError({
                  code: 'BLOB-CORRUPT',
                  message: `${spec.name} is larger than the ${spec.size} bytes apt's metadata promises`,
                }),
              );
              return;
            }
            onBytes?.(done, spec.size);
            cb(null, chunk);
          },
        });
        try {
          await pipeline(src.body, counter, createWriteStream(part, { flags: src.start > 0 ? 'a' : 'w' }));
        } catch (e) {
          if (e instanceof SutureError) {
            await rm(part, { force: true });
            throw e;
          }
          fail(
            'DOWNLOAD-FAILED',
            `download of ${spec.name} broke off after ${done} bytes: ${(e as Error).message}`,
            {
              hint: 'run the command again: the download resumes where it stopped',
            },
          );
        }
        const got = h.digest('hex');
        if (done === spec.size && got === spec.sha256) {
          const fh = await open(part, 'r');
          await fh.sync();
          await fh.close();
          await rename(part, final);
          return final;
        }
        await rm(part, { force: true });
        // A resumed download may have glued onto bad bytes: redo it once from zero before giving up.
        if (src.start > 0 && attempt === 0) continue;
        fail('BLOB-CORRUPT', `${spec.name} does not match apt's metadata`, {
          detail: [
            `expected ${spec.size} bytes, sha256 ${spec.sha256}`,
            `got      ${done} bytes, sha256 ${got}`,
          ],
          why: 'a corrupt or tampered package must never be extracted',
          hint: 'the partial download was deleted; run `apt-get update` and try again',
        });
      }
    },
    staleMs,
  );
}

export interface EntryOptions {
  /**
   * false: the tree records its own absolute path (kbuild's .cmd files), so it is built at a unique
   * name that never moves and published by swapping a symlink; true: built in staging, then renamed.
   */
  relocatable: boolean;
  /** how long a dead holder's lock lives before it is taken over (default 20 s) */
  staleMs?: number;
}

/** Resolve an entry name to its directory if it is complete, else undefined. */
export function findEntry(root: string, name: string): string | undefined {
  const p = entryPath(root, name);
  return existsSync(p) ? p : undefined;
}

/**
 * Make sure the entry `name` exists, building it with `build(dir)` if not. `build` writes into a
 * fresh directory; only when it resolves is the entry published. Returns the entry's physical path.
 */
export async function ensureEntry(
  root: string,
  name: string,
  build: (dir: string) => Promise<void>,
  opts: EntryOptions,
): Promise<string> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) fail('CACHE-BAD-NAME', `bad cache entry name ${name}`);
  const entries = join(root, 'entries');
  const staging = join(entries, '.staging');
  const published = entryPath(root, name);
  const physical = (): string =>
    lstatSync(published).isSymbolicLink() ? join(entries, readlinkSync(published)) : published;
  if (existsSync(published)) return physical();
  mkdirs(staging);
  return withLock(
    root,
    `entry-${name}`,
    async () => {
      if (existsSync(published)) return physical();
      // We hold the lock: anything left for this name was left by a dead process.
      await removeLeftovers(entries, staging, name);
      if (opts.relocatable) {
        const tmp = join(staging, `${name}.${tag()}`);
        mkdirs(tmp);
        try {
          await build(tmp);
        } catch (e) {
          await rm(tmp, { recursive: true, force: true });
          throw e;
        }
        await rename(tmp, published);
        return published;
      }
      const unique = `${name}.@${tag()}`;
      const dir = join(entries, unique);
      mkdirs(dir);
      try {
        await build(dir);
      } catch (e) {
        await rm(dir, { recursive: true, force: true });
        throw e;
      }
      const link = join(staging, `${name}.link.${tag()}`);
      await symlink(unique, link);
      await rename(link, published); // atomic: readers see no entry or the finished one
      return dir;
    },
    opts.staleMs,
  );
}

async function removeLeftovers(entries: string, staging: string, name: string): Promise<void> {
  const published = join(entries, name);
  let keep: string | undefined;
  try {
    keep = await readlink(published);
  } catch {
    keep = undefined;
  }
  for (const f of readdirSync(staging)) {
    if (f.startsWith(`${name}.`)) await rm(join(staging, f), { recursive: true, force: true });
  }
  for (const f of readdirSync(entries)) {
    if (f.startsWith(`${name}.@`) && f !== keep) await rm(join(entries, f), { recursive: true, force: true });
  }
  // a dangling symlink (its target was removed) counts as absent
  if (keep !== undefined && !existsSync(published)) await unlink(published).catch(() => undefined);
}

/** Write `text` to `path` atomically (temp file in the same directory, fsync, rename). */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp.${tag()}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Point `link` at `target` atomically (replacing any existing link). */
export async function linkAtomic(target: string, link: string): Promise<void> {
  const tmp = `${link}.tmp.${tag()}`;
  await symlink(target, tmp);
  await rename(tmp, link);
}

/** SHA256 of a file's bytes (streamed). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await hashFile(path, h);
  return h.digest('hex');
}

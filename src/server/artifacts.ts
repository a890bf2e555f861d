/*
 * The artifact store: livepatch modules, named by their sha256.
 *
 * The database (`artifact_blobs`) is the source of truth, so every server instance sharing one
 * PostgreSQL database can serve a module that another instance received; `<data>/artifacts/ab/abcdef…`
 * is this instance's local cache of it. An upload streams into `<data>/artifacts/tmp/` while hashing;
 * only when the byte count is within the limit and the hash equals the one announced is it recorded in
 * the database, then fsynced and renamed into the cache. A blob is therefore always complete and
 * correct; a kill mid-upload leaves at most a temp file, removed at the next start, and a blob without a
 * patch row is harmless (publishing is the DB transaction that follows). A module missing from the
 * cache is fetched from the database, checked against its name, and cached. At start, modules cached
 * by an earlier version (before the database held them) are recorded in the database.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SutureError } from '../diagnostic.js';
import type { Store } from './store.js';

/** The part of the store that keeps module bytes. */
export type BlobStore = Pick<Store, 'putBlob' | 'blobSize' | 'blobData'>;

const SHA256 = /^[0-9a-f]{64}$/;

export class ArtifactStore {
  readonly root: string;
  private readonly tmp: string;

  constructor(
    dataDir: string,
    private readonly blobs: BlobStore,
  ) {
    this.root = join(dataDir, 'artifacts');
    this.tmp = join(this.root, 'tmp');
  }

  /**
   * Create the directories, drop temp files left by a killed upload, and record in the database the
   * cached modules it does not have yet (each checked against its name first).
   */
  async init(): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
    for (const f of await readdir(this.tmp)) await rm(join(this.tmp, f), { force: true });
    for (const dir of await readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of await readdir(join(this.root, dir))) {
        if (!SHA256.test(name) || !name.startsWith(dir)) continue;
        if ((await this.blobs.blobSize(name)) !== undefined) continue;
        const data = await readFile(join(this.root, dir, name));
        if (createHash('sha256').update(data).digest('hex') !== name) {
          await rm(join(this.root, dir, name), { force: true });
          continue;
        }
        await this.blobs.putBlob(name, data, new Date().toISOString());
      }
    }
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  /** The module's size when some instance has received it. */
  async has(sha256: string): Promise<{ size: number } | undefined> {
    const size = await this.blobs.blobSize(sha256);
    return size === undefined ? undefined : { size };
  }

  /** Store `body` as the blob `sha256`; refuses (and keeps nothing) on a size or hash mismatch. */
  async put(sha256: string, body: Readable, maxBytes: number): Promise<{ size: number }> {
    const existing = await this.has(sha256);
    if (existing) {
      body.resume();
      return existing;
    }
    const tmp = join(this.tmp, `${sha256}.${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (size > maxBytes) {
              throw new SutureError({
                code: 'UPLOAD-TOO-LARGE',
                message: `the module is larger than the upload limit of ${maxBytes} bytes`,
                hint: 'start the server with a larger --max-upload if this module is genuine',
              });
            }
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
      );
      const got = hash.digest('hex');
      if (got !== sha256) {
        throw new SutureError({
          code: 'UPLOAD-HASH-MISMATCH',
          message: `the uploaded bytes hash to ${got}, not ${sha256}`,
          why: 'the module was changed or truncated on the way, or the manifest belongs to another build',
          hint: 'publish the module together with the manifest.json that `suture build` wrote for it',
        });
      }
      await this.blobs.putBlob(sha256, await readFile(tmp), new Date().toISOString());
      await this.cache(tmp, sha256);
      return { size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Move the verified temp file `tmp` into the cache under its name. */
  private async cache(tmp: string, sha256: string): Promise<void> {
    const fh = await open(tmp, 'r');
    await fh.sync();
    await fh.close();
    await mkdir(join(this.root, sha256.slice(0, 2)), { recursive: true });
    await rename(tmp, this.pathOf(sha256));
  }

  /** The module's bytes: from the local cache, else from the database (then cached). */
  async read(sha256: string): Promise<Readable | Buffer> {
    try {
      await stat(this.pathOf(sha256));
      return createReadStream(this.pathOf(sha256));
    } catch {
      // not cached here: another instance received it
    }
    const data = await this.blobs.blobData(sha256);
    if (!data) {
      throw new SutureError({
        code: 'ARTIFACT-MISSING',
        message: `the module ${sha256} is in no cache and not in the database`,
        hint: 'publish the patch again (`suture publish` uploads the module)',
      });
    }
    const got = createHash('sha256').update(data).digest('hex');
    if (got !== sha256) {
      throw new SutureError({
        code: 'ARTIFACT-CORRUPT',
        message: `the database holds bytes hashing to ${got} under the module ${sha256}`,
        hint: 'the database was changed outside Suture: revoke the patch and publish it again',
      });
    }
    const tmp = join(this.tmp, `${sha256}.${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(tmp, data, { flag: 'wx', mode: 0o644 });
      await this.cache(tmp, sha256);
    } catch {
      // the cache is an optimisation: serve the verified bytes anyway
    } finally {
      await rm(tmp, { force: true });
    }
    return data;
  }
}

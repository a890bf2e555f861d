/*
 * The artifact store: livepatch modules on disk, named by their sha256.
 *
 * `<data>/artifacts/ab/abcdef…` holds the module whose sha256 is `abcdef…`. An upload streams into
 * `<data>/artifacts/tmp/` while hashing; only when the byte count is within the limit and the hash
 * equals the one announced is the file fsynced and renamed into place, so a blob under its name is
 * always complete and correct. A kill mid-upload leaves at most a temp file, removed at the next start.
 * A blob without a patch row is harmless (publishing is the DB transaction that follows).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SutureError } from '../diagnostic.js';

export class ArtifactStore {
  readonly root: string;
  private readonly tmp: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'artifacts');
    this.tmp = join(this.root, 'tmp');
  }

  /** Create the directories and drop temp files left by a killed upload. */
  async init(): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
    for (const f of await readdir(this.tmp)) await rm(join(this.tmp, f), { force: true });
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async has(sha256: string): Promise<{ size: number } | undefined> {
    try {
      const s = await stat(this.pathOf(sha256));
      return { size: s.size };
    } catch {
      return undefined;
    }
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
      const fh = await open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await mkdir(join(this.root, sha256.slice(0, 2)), { recursive: true });
      await rename(tmp, this.pathOf(sha256));
      return { size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  read(sha256: string): Readable {
    return createReadStream(this.pathOf(sha256));
  }
}

/*
 * Unpacking Debian packages into cache entries.
 *
 * A .deb's file system tree comes out of `dpkg-deb --fsys-tarfile` (which knows every compression
 * Debian uses) and goes into `tar -x`; the bytes flow through this process so extraction can report
 * progress. The kernel source is one tarball inside `linux-source-6.1`, unpacked straight into the
 * tree without ever landing on disk as a file.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fail } from '../diagnostic.js';

export type BytesProgress = (done: number, total: number) => void;

/** `Installed-Size` of a .deb, in bytes (dpkg records KiB). */
export function installedSize(deb: string): number {
  const r = spawnSync('dpkg-deb', ['-f', deb, 'Installed-Size'], { encoding: 'utf8' });
  const kib = Number(r.stdout.trim());
  if (r.status !== 0 || !Number.isFinite(kib)) {
    fail('DEB-UNREADABLE', `cannot read the control fields of ${deb}`, {
      detail: r.stderr.trim().split('\n'),
      hint: 'the cached blob may be damaged: delete it and fetch again',
    });
  }
  return kib * 1024;
}

function exited(p: ChildProcess, what: string, stderr: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    p.on('error', (e) => reject(e));
    p.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${what} failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${stderr.join('').trim()}`,
          ),
        );
    });
  });
}

function collect(p: ChildProcess): string[] {
  const out: string[] = [];
  p.stderr?.on('data', (d: Buffer) => {
    if (out.length < 200) out.push(d.toString());
  });
  return out;
}

/**
 * Stream `producer`'s stdout into `consumer`'s stdin, counting bytes. Rejects with both processes'
 * stderr if either fails.
 */
async function pump(
  producer: { cmd: string; args: string[] },
  consumer: { cmd: string; args: string[] },
  total: number,
  onBytes?: BytesProgress,
): Promise<void> {
  const p = spawn(producer.cmd, producer.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const c = spawn(consumer.cmd, consumer.args, { stdio: ['pipe', 'ignore', 'pipe'] });
  const pe = collect(p);
  const ce = collect(c);
  let done = 0;
  // Hand-pumped rather than stream.pipeline: tar may exit as soon as it reads the end-of-archive
  // blocks, which a pipeline reports as a premature close. Success is decided by both exit statuses.
  const stdin = c.stdin;
  const stdout = p.stdout;
  if (!stdin || !stdout) throw new Error('child stdio not piped');
  let stdinOpen = true;
  stdin.on('error', () => {
    stdinOpen = false;
    stdout.resume();
  });
  stdin.on('close', () => {
    stdinOpen = false;
    stdout.resume();
  });
  stdout.on('data', (chunk: Buffer) => {
    done += chunk.length;
    onBytes?.(Math.min(done, total), total);
    if (stdinOpen && !stdin.write(chunk)) {
      stdout.pause();
      stdin.once('drain', () => stdout.resume());
    }
  });
  stdout.on('end', () => {
    if (stdinOpen) stdin.end();
  });
  try {
    await Promise.all([exited(p, producer.cmd, pe), exited(c, consumer.cmd, ce)]);
  } catch (e) {
    p.kill();
    c.kill();
    throw e;
  }
  onBytes?.(total, total);
}

/** Extract the whole file system tree of `deb` into `dest` (an existing, empty directory). */
export async function extractDeb(deb: string, dest: string, onBytes?: BytesProgress): Promise<void> {
  const total = installedSize(deb);
  try {
    await pump(
      { cmd: 'dpkg-deb', args: ['--fsys-tarfile', deb] },
      { cmd: 'tar', args: ['-x', '-f', '-', '-C', dest, '--no-same-owner'] },
      total,
      onBytes,
    );
  } catch (e) {
    fail('DEB-EXTRACT-FAILED', `cannot extract ${deb}`, {
      detail: [(e as Error).message],
      hint: 'check free disk space; the partial extraction was discarded, run the command again',
    });
  }
}

/**
 * Extract the tarball `member` (e.g. `./usr/src/linux-source-6.1.tar.xz`) carried inside `deb`
 * into `dest`, stripping its top directory.
 */
export async function extractInnerTarball(
  deb: string,
  member: string,
  dest: string,
  total: number,
  onBytes?: BytesProgress,
): Promise<void> {
  try {
    await pump(
      { cmd: 'sh', args: ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -O -f - "$2"', 'sh', deb, member] },
      { cmd: 'tar', args: ['-x', '-J', '-f', '-', '-C', dest, '--strip-components=1', '--no-same-owner'] },
      total,
      onBytes,
    );
  } catch (e) {
    fail('DEB-EXTRACT-FAILED', `cannot extract ${member} from ${deb}`, {
      detail: [(e as Error).message],
      hint: 'check free disk space; the partial tree was discarded, run the command again',
    });
  }
}

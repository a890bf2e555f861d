/*
 * Cache atomicity: verified downloads (temp + verify + rename), corrupt bytes rejected, resumed
 * downloads after a kill, concurrent fills from two processes, half-written entries never used.
 * Everything runs against a throw-away SUTURE_CACHE and a local HTTP server serving fake packages.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { blobPath, ensureBlob, ensureEntry, entryPath, writeFileAtomic } from './cache.js';
import { nodeScript } from './testing/node-script.js';

const CACHE_JS = fileURLToPath(new URL('./cache.js', import.meta.url));

interface Served {
  body: Buffer;
  /** bytes per chunk and pause between chunks, to make a download slow enough to kill */
  slow?: boolean;
}

let server: Server;
let base = '';
const files = new Map<string, Served>();
const hits: { path: string; range?: string }[] = [];

before(async () => {
  server = createServer((req, res) => {
    const f = files.get(req.url ?? '');
    hits.push({ path: req.url ?? '', ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      start = Number(m[1]);
      res.writeHead(206, {
        'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}`,
        'content-length': f.body.length - start,
      });
    } else res.writeHead(200, { 'content-length': f.body.length });
    const rest = f.body.subarray(start);
    if (!f.slow) {
      res.end(rest);
      return;
    }
    let off = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (off >= rest.length) {
        res.end();
        return;
      }
      res.write(rest.subarray(off, off + 4096));
      off += 4096;
      setTimeout(tick, 20);
    };
    tick();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const roots: string[] = [];
function freshCache(): string {
  const r = mkdtempSync(join(tmpdir(), 'suture-cache-test-'));
  roots.push(r);
  return r;
}

function serve(
  path: string,
  body: Buffer,
  slow = false,
): { uri: string; sha256: string; size: number; name: string } {
  files.set(path, { body, slow });
  return {
    uri: `${base}${path}`,
    sha256: createHash('sha256').update(body).digest('hex'),
    size: body.length,
    name: path,
  };
}

const child = nodeScript;

describe('blobs', () => {
  test('a download is verified, renamed into place, and reused without the network', async () => {
    const root = freshCache();
    const spec = serve('/ok.deb', randomBytes(200_000));
    const seen: number[] = [];
    const p = await ensureBlob(root, spec, (d) => seen.push(d));
    assert.equal(p, blobPath(root, spec.sha256));
    assert.equal(createHash('sha256').update(readFileSync(p)).digest('hex'), spec.sha256);
    assert.equal(seen.at(-1), spec.size);
    assert.deepEqual(readdirSync(join(root, 'blobs', 'partial')), []);
    const before = hits.length;
    assert.equal(await ensureBlob(root, spec), p);
    assert.equal(hits.length, before, 'a cached blob needs no request');
  });

  test('bytes that do not match the SHA256 are rejected and nothing is kept', async () => {
    const root = freshCache();
    const good = randomBytes(50_000);
    const spec = serve('/corrupt.deb', good);
    const bad = Buffer.from(good);
    bad[1234] = (bad[1234] ?? 0) ^ 0xff;
    files.set('/corrupt.deb', { body: bad });
    await assert.rejects(ensureBlob(root, spec), (e: Error & { code?: string }) => e.code === 'BLOB-CORRUPT');
    assert.equal(existsSync(blobPath(root, spec.sha256)), false);
    assert.deepEqual(readdirSync(join(root, 'blobs', 'partial')), []);
  });

  test('a longer body than apt promised is rejected', async () => {
    const root = freshCache();
    const spec = serve('/long.deb', randomBytes(10_000));
    files.set('/long.deb', { body: randomBytes(20_000) });
    await assert.rejects(ensureBlob(root, spec), (e: Error & { code?: string }) => e.code === 'BLOB-CORRUPT');
    assert.equal(existsSync(blobPath(root, spec.sha256)), false);
  });

  test('a partial download left by a kill is resumed with a range request', async () => {
    const root = freshCache();
    const body = randomBytes(300_000);
    const spec = serve('/resume.deb', body);
    mkdirSync(join(root, 'blobs', 'partial'), { recursive: true });
    writeFileSync(join(root, 'blobs', 'partial', `${spec.sha256}.part`), body.subarray(0, 123_456));
    const p = await ensureBlob(root, spec);
    assert.deepEqual(readFileSync(p), body);
    assert.ok(hits.some((h) => h.path === '/resume.deb' && h.range === 'bytes=123456-'));
  });

  test('a partial with wrong bytes is redone from zero, not glued onto', async () => {
    const root = freshCache();
    const body = randomBytes(100_000);
    const spec = serve('/badpart.deb', body);
    mkdirSync(join(root, 'blobs', 'partial'), { recursive: true });
    writeFileSync(join(root, 'blobs', 'partial', `${spec.sha256}.part`), randomBytes(40_000));
    const p = await ensureBlob(root, spec);
    assert.deepEqual(readFileSync(p), body);
  });

  test('a download killed half way (SIGKILL) resumes in the next process', async () => {
    const root = freshCache();
    const body = randomBytes(2_000_000);
    const spec = serve('/killed.deb', body, true);
    const c = child(
      `import { ensureBlob } from ${JSON.stringify(CACHE_JS)};
       await ensureBlob(${JSON.stringify(root)}, ${JSON.stringify(spec)}, (d) => { if (d > 300000) process.kill(process.pid, 'SIGKILL'); });`,
    );
    const r = await c.done;
    assert.equal(r.code, null, `the child should have been killed: ${r.out}`);
    const part = join(root, 'blobs', 'partial', `${spec.sha256}.part`);
    assert.ok(existsSync(part), 'the kill leaves a partial file');
    assert.equal(existsSync(blobPath(root, spec.sha256)), false, 'and no blob under its final name');
    files.set('/killed.deb', { body }); // fast now
    const p = await ensureBlob(root, spec, undefined, 2000);
    assert.deepEqual(readFileSync(p), body);
    assert.ok(
      hits.some((h) => h.path === '/killed.deb' && h.range !== undefined),
      'resumed with a range request',
    );
  });

  test('two processes fetching one blob at once: one download, both get the verified file', async () => {
    const root = freshCache();
    const body = randomBytes(400_000);
    const spec = serve('/twice.deb', body, true);
    const before = hits.filter((h) => h.path === '/twice.deb').length;
    const script = `import { ensureBlob } from ${JSON.stringify(CACHE_JS)};
       console.log(await ensureBlob(${JSON.stringify(root)}, ${JSON.stringify(spec)}));`;
    const [a, b] = await Promise.all([child(script).done, child(script).done]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assert.equal(a.out.trim(), blobPath(root, spec.sha256));
    assert.equal(b.out.trim(), a.out.trim());
    assert.deepEqual(readFileSync(a.out.trim()), body);
    assert.equal(hits.filter((h) => h.path === '/twice.deb').length - before, 1, 'downloaded once');
  });
});

describe('entries', () => {
  test('a failed build publishes nothing and leaves no staging tree', async () => {
    const root = freshCache();
    await assert.rejects(
      ensureEntry(
        root,
        'deb-x',
        async (dir) => {
          writeFileSync(join(dir, 'half'), 'x');
          throw new Error('disk full');
        },
        { relocatable: true },
      ),
      /disk full/,
    );
    assert.equal(existsSync(entryPath(root, 'deb-x')), false);
    assert.deepEqual(readdirSync(join(root, 'entries', '.staging')), []);
    const p = await ensureEntry(root, 'deb-x', async (dir) => writeFileSync(join(dir, 'whole'), 'y'), {
      relocatable: true,
    });
    assert.deepEqual(readdirSync(p), ['whole']);
  });

  test('a non-relocatable tree is built at its final path and published by a symlink', async () => {
    const root = freshCache();
    let builtAt = '';
    const p = await ensureEntry(
      root,
      'tree-k',
      async (dir) => {
        builtAt = dir;
        writeFileSync(join(dir, 'Makefile'), 'x');
      },
      { relocatable: false },
    );
    assert.equal(p, builtAt, 'the tree never moves after it was built');
    assert.ok(lstatSync(entryPath(root, 'tree-k')).isSymbolicLink());
    assert.equal(realpathSync(entryPath(root, 'tree-k')), realpathSync(builtAt));
    assert.equal(
      await ensureEntry(root, 'tree-k', async () => assert.fail('rebuilt'), { relocatable: false }),
      p,
    );
  });

  test('a builder killed half way leaves nothing that is used; the next process redoes it', async () => {
    const root = freshCache();
    const c = child(
      `import { ensureEntry } from ${JSON.stringify(CACHE_JS)};
       import { writeFileSync } from 'node:fs';
       await ensureEntry(${JSON.stringify(root)}, 'tree-half', async (dir) => {
         writeFileSync(dir + '/half-written', 'x');
         process.kill(process.pid, 'SIGKILL');
       }, { relocatable: false, staleMs: 2000 });`,
    );
    const r = await c.done;
    assert.equal(r.code, null, r.out);
    assert.equal(existsSync(entryPath(root, 'tree-half')), false, 'no entry is published');
    const leftovers = readdirSync(join(root, 'entries')).filter((f) => f.startsWith('tree-half.@'));
    assert.equal(leftovers.length, 1, 'the dead builder left its unpublished tree');
    const p = await ensureEntry(root, 'tree-half', async (dir) => writeFileSync(join(dir, 'complete'), 'y'), {
      relocatable: false,
      staleMs: 2000,
    });
    assert.deepEqual(readdirSync(p), ['complete']);
    assert.deepEqual(
      readdirSync(join(root, 'entries')).filter((f) => f.startsWith('tree-half.@')),
      [p.split('/').at(-1)],
      'the dead builder’s tree was removed',
    );
  });

  test('two processes ensuring one entry: it is built once, both see the complete tree', async () => {
    const root = freshCache();
    const counter = join(root, 'builds');
    const script = `import { ensureEntry } from ${JSON.stringify(CACHE_JS)};
       import { appendFileSync, writeFileSync, readdirSync } from 'node:fs';
       const p = await ensureEntry(${JSON.stringify(root)}, 'deb-shared', async (dir) => {
         appendFileSync(${JSON.stringify(counter)}, 'b');
         writeFileSync(dir + '/a', '1');
         await new Promise((r) => setTimeout(r, 800));
         writeFileSync(dir + '/b', '2');
       }, { relocatable: true });
       console.log(JSON.stringify(readdirSync(p).sort()));`;
    const [a, b] = await Promise.all([child(script).done, child(script).done]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assert.equal(a.out.trim(), '["a","b"]');
    assert.equal(b.out.trim(), '["a","b"]');
    assert.equal(readFileSync(counter, 'utf8'), 'b', 'built exactly once');
  });
});

test('writeFileAtomic replaces a file without a window where it is partial', async () => {
  const root = freshCache();
  const p = join(root, 'target.json');
  await writeFileAtomic(p, 'one');
  await writeFileAtomic(p, 'two');
  assert.equal(readFileSync(p, 'utf8'), 'two');
  assert.deepEqual(readdirSync(root), ['target.json']);
});

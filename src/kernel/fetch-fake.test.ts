/*
 * The whole fetch (download → verify → extract → prepare → build id → record) on small fake Debian
 * packages built here with dpkg-deb and served over local HTTP, in a throw-away SUTURE_CACHE:
 * two processes fetching one release at once, a fetch killed while preparing the tree, a corrupt
 * package, and a source whose version is not the image's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SutureError } from '../diagnostic.js';
import type { DebLocation } from './apt.js';
import { ensureKernelFrom } from './fetch.js';
import type { ResolvedRelease } from './releases.js';
import { nodeScript } from './testing/node-script.js';

const FETCH_JS = fileURLToPath(new URL('./fetch.js', import.meta.url));
const R = '6.1.0-53-cloud-amd64';
const V = '6.1.187-1';
const work = mkdtempSync(join(tmpdir(), 'suture-fakefetch-'));
const served = new Map<string, Buffer>();
const hits: string[] = [];
let server: Server;
let base = '';
let buildId = '';

const resolved: ResolvedRelease = {
  release: R,
  suite: 'bookworm',
  debianVersion: V,
  upstreamVersion: '6.1.187',
  packages: {
    image: `linux-image-${R}-unsigned`,
    headers: `linux-headers-${R}`,
    dbg: `linux-image-${R}-dbg`,
    source: 'linux-source-6.1',
  },
};

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Build a .deb named `pkg` from the files in `tree` (path → content) and return its bytes. */
function deb(pkg: string, files: Record<string, string | Buffer>): Buffer {
  const root = join(
    work,
    `pkg-${pkg}-${createHash('sha1')
      .update(JSON.stringify(Object.keys(files)))
      .digest('hex')}`,
  );
  rmSync(root, { recursive: true, force: true });
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), c);
  }
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  writeFileSync(
    join(root, 'DEBIAN', 'control'),
    `Package: ${pkg}\nVersion: ${V}\nArchitecture: all\nMaintainer: test <t@example.org>\nInstalled-Size: 64\nDescription: fake\n`,
  );
  const out = `${root}.deb`;
  run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, out]);
  return readFileSync(out);
}

/** A kernel Makefile reduced to what the preparation uses: version lines, release lines, two targets. */
function sourceMakefile(sublevel: number, prepareSleep = 0): string {
  return `VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = ${sublevel}
EXTRAVERSION =
KERNELRELEASE = $(shell cat include/config/kernel.release 2> /dev/null)
KERNELVERSION = $(VERSION).$(PATCHLEVEL).$(SUBLEVEL)
filechk_kernel.release = \\
\techo "$(KERNELVERSION)$$($(CONFIG_SHELL) $(srctree)/scripts/setlocalversion $(srctree))"
olddefconfig:
\tcp .config .config.old
modules_prepare:
\tsleep ${prepareSleep}
\tmkdir -p include/generated include/config
\techo '#define UTS_RELEASE "$(KERNELRELEASE)"' > include/generated/utsrelease.h
lib/ctype.o:
\tmkdir -p lib scripts/genksyms && touch lib/ctype.o lib/.ctype.o.cmd scripts/genksyms/genksyms
`;
}

function sourceDeb(sublevel: number, prepareSleep = 0): Buffer {
  const src = join(work, `src-${sublevel}-${prepareSleep}`);
  mkdirSync(join(src, 'linux-source-6.1'), { recursive: true });
  writeFileSync(join(src, 'linux-source-6.1', 'Makefile'), sourceMakefile(sublevel, prepareSleep));
  writeFileSync(join(src, 'linux-source-6.1', 'README'), 'fake kernel source\n');
  run('tar', ['-cJf', 'linux-source-6.1.tar.xz', 'linux-source-6.1'], src);
  return deb('linux-source-6.1', {
    'usr/src/linux-source-6.1.tar.xz': readFileSync(join(src, 'linux-source-6.1.tar.xz')),
  });
}

function publish(name: string, bytes: Buffer, pkg: string): DebLocation {
  served.set(`/${name}`, bytes);
  return {
    package: pkg,
    version: V,
    uri: `${base}/${name}`,
    filename: name,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

let goodLocs: DebLocation[] = [];
let vmlinux = Buffer.alloc(0);

before(async () => {
  server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const b = served.get(req.url ?? '');
    if (!b) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': b.length }).end(b);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // a "vmlinux": any ELF with a GNU build id note
  writeFileSync(join(work, 'v.c'), 'int main(void) { return 0; }\n');
  // -fcf-protection=none: no .note.gnu.property (like the kernel's vmlinux); the ELF engine's note
  // walk does not yet accept that 8-aligned note (reported to its owner)
  run('gcc', ['-fcf-protection=none', '-o', join(work, 'vmlinux'), join(work, 'v.c'), '-Wl,--build-id=sha1']);
  vmlinux = readFileSync(join(work, 'vmlinux'));
  buildId = /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', join(work, 'vmlinux')]))?.[1] ?? '';
  // the kernel's compiler is the host's gcc, so the fake tree is prepared on the host
  const cc = spawnSync('gcc', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  const config = `CONFIG_CC_VERSION_TEXT="${cc}"\nCONFIG_LIVEPATCH=y\nCONFIG_MODVERSIONS=y\nCONFIG_UNWINDER_ORC=y\n`;
  goodLocs = [
    publish(
      'image.deb',
      deb(resolved.packages.image, {
        [`boot/vmlinuz-${R}`]: 'bzImage',
        [`boot/config-${R}`]: config,
        [`lib/modules/${R}/modules.order`]: '',
        [`lib/modules/${R}/modules.builtin`]: '',
        [`lib/modules/${R}/modules.builtin.modinfo`]: '',
      }),
      resolved.packages.image,
    ),
    publish(
      'headers.deb',
      deb(resolved.packages.headers, {
        [`usr/src/linux-headers-${R}/Module.symvers`]: '0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n',
      }),
      resolved.packages.headers,
    ),
    publish(
      'dbg.deb',
      deb(resolved.packages.dbg, {
        [`usr/lib/debug/boot/vmlinux-${R}`]: vmlinux,
        [`usr/lib/debug/lib/modules/${R}/kernel/x.ko`]: 'ko',
      }),
      resolved.packages.dbg,
    ),
    publish('source.deb', sourceDeb(187), resolved.packages.source),
  ];
});

after(() => {
  server.closeAllConnections();
  server.close();
  rmSync(work, { recursive: true, force: true });
});

function freshCache(): string {
  return mkdtempSync(join(work, 'cache-'));
}

function child(
  cache: string,
  locs: DebLocation[],
  extra = '',
): Promise<{ code: number | null; out: string }> {
  const script = `import { ensureKernelFrom } from ${JSON.stringify(FETCH_JS)};
    const t = await ensureKernelFrom(${JSON.stringify(resolved)}, ${JSON.stringify(locs)}, {
      onProgress: (e) => { ${extra} },
    });
    console.log(JSON.stringify(t));`;
  return nodeScript(script, { SUTURE_CACHE: cache, SUTURE_LOCK_STALE_MS: '2000' }).done;
}

async function inCache<T>(cache: string, fn: () => Promise<T>): Promise<T> {
  const saved = { c: process.env.SUTURE_CACHE, s: process.env.SUTURE_LOCK_STALE_MS };
  process.env.SUTURE_CACHE = cache;
  process.env.SUTURE_LOCK_STALE_MS = '2000';
  try {
    return await fn();
  } finally {
    for (const [k, v] of [
      ['SUTURE_CACHE', saved.c],
      ['SUTURE_LOCK_STALE_MS', saved.s],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('two processes fetching one release at once: each package downloaded once, one tree, same target', async () => {
  const cache = freshCache();
  const before = hits.length;
  const [a, b] = await Promise.all([child(cache, goodLocs), child(cache, goodLocs)]);
  assert.equal(a.code, 0, a.out);
  assert.equal(b.code, 0, b.out);
  const ta = JSON.parse(a.out.trim().split('\n').at(-1) ?? '');
  const tb = JSON.parse(b.out.trim().split('\n').at(-1) ?? '');
  assert.deepEqual(ta, tb);
  assert.equal(ta.buildId, buildId);
  assert.equal(ta.debianVersion, V);
  assert.match(
    readFileSync(join(ta.sourceTree, 'include/generated/utsrelease.h'), 'utf8'),
    /"6\.1\.0-53-cloud-amd64"/,
  );
  assert.ok(existsSync(join(ta.modulesDir, 'modules.dep')), 'depmod ran on the image');
  assert.ok(existsSync(join(ta.sourceTree, 'scripts/genksyms/genksyms')), 'in-tree prerequisites were built');
  assert.equal(existsSync(join(ta.sourceTree, 'lib/ctype.o')), false, 'the probe object was removed');
  assert.equal(existsSync(join(ta.sourceTree, 'lib/.ctype.o.cmd')), false);
  const rec = JSON.parse(readFileSync(join(cache, 'kernels', R, 'target.json'), 'utf8'));
  for (const s of ['untar source', 'make olddefconfig', 'make modules_prepare', 'read build id']) {
    assert.equal(typeof rec.timings[s], 'number', `timing of ${s}`);
  }
  assert.equal(readFileSync(ta.moduleSymvers, 'utf8').split('\t')[1], 'printk');
  assert.deepEqual(hits.slice(before).sort(), ['/dbg.deb', '/headers.deb', '/image.deb', '/source.deb']);
  const entries = readdirSync(join(cache, 'entries'));
  assert.equal(entries.filter((e) => /^tree-.*\.@/.test(e)).length, 1, 'one prepared tree');
  assert.deepEqual(readdirSync(join(cache, 'entries', '.staging')), []);
});

test('a fetch killed while preparing the tree leaves no target; the next fetch completes it', async () => {
  const cache = freshCache();
  const slow = goodLocs.map((l) =>
    l.package === resolved.packages.source ? publish('slow-source.deb', sourceDeb(187, 3), l.package) : l,
  );
  const killed = await child(
    cache,
    slow,
    `if (e.kind === 'step' && e.step === 'make modules_prepare' && e.state === 'start') setTimeout(() => process.kill(process.pid, 'SIGKILL'), 300);`,
  );
  assert.equal(killed.code, null, killed.out);
  assert.equal(existsSync(join(cache, 'kernels', R, 'target.json')), false, 'no completion record');
  assert.ok(
    readdirSync(join(cache, 'entries')).some((e) => /^tree-.*\.@/.test(e)),
    'an unpublished tree was left',
  );
  assert.equal(
    readdirSync(join(cache, 'entries')).some((e) => /^tree-[0-9a-f]+$/.test(e)),
    false,
    'but it was never published',
  );
  const t = await inCache(cache, () => ensureKernelFrom(resolved, slow));
  assert.equal(t.buildId, buildId);
  assert.ok(existsSync(join(cache, 'kernels', R, 'target.json')));
  assert.equal(
    readdirSync(join(cache, 'entries')).filter((e) => /^tree-.*\.@/.test(e)).length,
    1,
    'the dead fetch’s tree was removed',
  );
});

test('a package whose bytes do not match apt’s SHA256 stops the fetch before anything is extracted', async () => {
  const cache = freshCache();
  const bad = goodLocs.map((l) =>
    l.package === resolved.packages.image ? { ...l, sha256: 'f'.repeat(64) } : l,
  );
  await assert.rejects(
    inCache(cache, () => ensureKernelFrom(resolved, bad)),
    (e: unknown) => (e as SutureError).code === 'BLOB-CORRUPT',
  );
  assert.equal(existsSync(join(cache, 'kernels', R, 'target.json')), false);
  assert.equal(existsSync(join(cache, 'entries')), false, 'nothing extracted');
});

test('a source tree of another version than the image is refused and not published', async () => {
  const cache = freshCache();
  const wrong = goodLocs.map((l) =>
    l.package === resolved.packages.source ? publish('wrong-source.deb', sourceDeb(186), l.package) : l,
  );
  await assert.rejects(
    inCache(cache, () => ensureKernelFrom(resolved, wrong)),
    (e: unknown) => (e as SutureError).code === 'KERNEL-SOURCE-MISMATCH',
  );
  assert.equal(existsSync(join(cache, 'kernels', R, 'target.json')), false);
  assert.deepEqual(
    readdirSync(join(cache, 'entries')).filter((e) => e.startsWith('tree-')),
    [],
    'the failed tree was removed',
  );
});

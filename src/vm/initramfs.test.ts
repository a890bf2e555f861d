// Initramfs assembly, checked by listing and extracting the archives with the system's cpio, and module
// dependency resolution from a modules.dep. No VM, no kernel cache: a fake modules tree stands in.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import { CpioArchive } from './cpio.js';
import { assembleInitramfs, nodeWrapper } from './initramfs.js';
import { pruneLayers } from './layer-cache.js';
import { parseModulesBuiltin, parseModulesDep, resolveModules } from './modules.js';
import { productionPackages, repoRoot, sutureFiles } from './suture-files.js';

const RELEASE = '6.1.0-99-test-amd64';
const DEP = [
  'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
  'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
  'kernel/net/core/failover.ko:',
  'kernel/drivers/virtio/virtio_ring.ko:',
  'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci-modern-dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
  'kernel/drivers/virtio/virtio_pci-modern-dev.ko:',
  'kernel/fs/unused.ko:',
].join('\n');

let dir: string;
let kernel: KernelTarget;
const savedCache = process.env.SUTURE_CACHE;

function cpioList(file: string): string[] {
  return execFileSync('sh', ['-c', `zcat '${file}' | cpio -t --quiet`], { encoding: 'utf8' })
    .trim()
    .split('\n');
}

function cpioCat(file: string, member: string): string {
  return execFileSync('sh', ['-c', `zcat '${file}' | cpio -i --quiet --to-stdout '${member}'`], {
    encoding: 'utf8',
  });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-initramfs-test-'));
  process.env.SUTURE_CACHE = join(dir, 'cache');
  const modulesDir = join(dir, 'lib', 'modules', RELEASE);
  for (const line of DEP.split('\n')) {
    const ko = line.slice(0, line.indexOf(':'));
    mkdirSync(join(modulesDir, ko, '..'), { recursive: true });
    writeFileSync(join(modulesDir, ko), `fake module ${ko}\n`);
  }
  writeFileSync(join(modulesDir, 'modules.dep'), `${DEP}\n`);
  kernel = {
    release: RELEASE,
    debianVersion: '0',
    buildId: '00',
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    config: '',
    modulesDir,
    vmlinux: '',
    debugModulesDir: '',
    sourceTree: '',
    moduleSymvers: '',
  };
});

after(() => {
  if (savedCache === undefined) delete process.env.SUTURE_CACHE;
  else process.env.SUTURE_CACHE = savedCache;
  rmSync(dir, { recursive: true, force: true });
});

describe('modules.dep resolution', () => {
  it('orders dependencies before the modules that need them, each once', () => {
    const deps = parseModulesDep(DEP);
    const order = resolveModules(deps, ['virtio_net', 'virtio-pci', 'virtio']);
    assert.equal(new Set(order).size, order.length);
    const pos = (m: string) => order.findIndex((p) => p.endsWith(`/${m}.ko`));
    for (const [mod, dep] of [
      ['virtio_net', 'net_failover'],
      ['net_failover', 'failover'],
      ['virtio_net', 'virtio'],
      ['virtio', 'virtio_ring'],
      ['virtio_pci', 'virtio_pci-modern-dev'],
    ] as const) {
      assert.ok(pos(dep) >= 0 && pos(dep) < pos(mod), `${dep} must load before ${mod}: ${order.join(' ')}`);
    }
    assert.ok(!order.some((p) => p.includes('unused')));
  });

  it('names an unknown module with the close candidates', () => {
    assert.throws(
      () => resolveModules(parseModulesDep(DEP), ['virtio_ne']),
      (e: unknown) =>
        isSutureError(e) &&
        e.code === 'VM-MODULE-UNKNOWN' &&
        /virtio_net/.test(e.diagnostic.detail?.[0] ?? ''),
    );
  });

  it('leaves out a driver built into the kernel (6.12 has virtio_pci =y), .ko.xz names as in modules.dep', () => {
    const xz = parseModulesDep(
      'kernel/fs/binfmt_misc.ko.xz:\nkernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko.xz\nkernel/lib/libcrc32c.ko.xz:\n',
    );
    const builtin = parseModulesBuiltin(
      'kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n',
    );
    assert.deepEqual(resolveModules(xz, ['virtio_pci', 'virtio_console', 'xfs'], builtin), [
      'kernel/lib/libcrc32c.ko.xz',
      'kernel/fs/xfs/xfs.ko.xz',
    ]);
    // built in elsewhere is no excuse: a name neither shipped nor built in is still unknown
    assert.throws(
      () => resolveModules(xz, ['virtio_net'], builtin),
      (e: unknown) => isSutureError(e) && e.code === 'VM-MODULE-UNKNOWN',
    );
  });

  it('refuses a malformed modules.dep with its line number', () => {
    assert.throws(
      () => parseModulesDep('kernel/a.ko: kernel/b.ko\nno colon here\n', 'x.dep'),
      (e: unknown) => isSutureError(e) && e.code === 'VM-MODULES-DEP' && e.diagnostic.location?.line === 2,
    );
  });
});

describe('initramfs assembly', () => {
  it('builds base + run layers: busybox, /init, modules with deps, modules.dep, caller files', async () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    const extra = join(dir, 'payload.txt');
    writeFileSync(extra, 'payload\n');
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'sub', 'x'), 'x');
    const img = await assembleInitramfs({
      kernel,
      guest: { nonce: 'abc123', mode: 'agent', net: false },
      modules: ['virtio_net'],
      placeModules: ['virtio_pci'],
      files: [{ from: extra }, { from: extra, to: '/opt/data/renamed.txt' }, { from: tree, to: '/t' }],
      workDir: work,
    });
    assert.deepEqual(
      img.layers.map((l) => l.name),
      ['base', 'run'],
    );
    const base = cpioList(img.layers[0]!.path);
    for (const p of ['init', 'bin/busybox', 'bin/sh', 'suture/udhcpc.sh', 'dev', 'proc', 'sys', 'tmp']) {
      assert.ok(base.includes(p), `base layer lacks ${p}: ${base.join(' ')}`);
    }
    assert.equal(readFileSync(img.path).length, img.bytes, 'the image is the layers concatenated');
    // the kernel takes an uncompressed cpio (the node layer) only at a 4-aligned offset of the image:
    // every layer starts at one, zero-padded after the one before
    const image = readFileSync(img.path);
    let at = 0;
    for (const l of img.layers) {
      assert.equal(at % 4, 0, `${l.name} layer starts at ${at}`);
      assert.ok(
        image.subarray(at, at + l.bytes).equals(readFileSync(l.path)),
        `${l.name} layer is in the image`,
      );
      at += l.bytes + ((4 - (l.bytes % 4)) % 4);
    }
    const run = cpioList(img.layers[1]!.path);
    const m = `lib/modules/${RELEASE}`;
    for (const p of [
      'suture/config',
      `${m}/kernel/drivers/net/virtio_net.ko`,
      `${m}/kernel/net/core/failover.ko`,
      `${m}/kernel/drivers/virtio/virtio_ring.ko`,
      `${m}/kernel/drivers/virtio/virtio_pci.ko`,
      `${m}/modules.dep`,
      'payload.txt',
      'opt/data/renamed.txt',
      't/sub/x',
    ]) {
      assert.ok(run.includes(p), `run layer lacks ${p}: ${run.join(' ')}`);
    }
    assert.ok(!run.some((p) => p.includes('unused')));
    // parents come before children (the kernel does not create missing directories)
    for (const [i, p] of run.entries()) {
      const parent = p.split('/').slice(0, -1).join('/');
      if (parent) assert.ok(run.indexOf(parent) >= 0 && run.indexOf(parent) < i, `${parent} before ${p}`);
    }
    const config = cpioCat(img.layers[1]!.path, 'suture/config');
    assert.match(config, /SUTURE_NONCE=abc123/);
    const load = /SUTURE_LOAD='([^']*)'/.exec(config)?.[1]?.split(' ') ?? [];
    assert.deepEqual(img.loaded, load);
    assert.ok(load.at(-1)?.endsWith('virtio_net.ko'));
    assert.ok(!load.some((p) => p.includes('virtio_pci')), 'placed-only modules are not loaded');
    assert.equal(cpioCat(img.layers[1]!.path, 'payload.txt'), 'payload\n');
    const dep = cpioCat(img.layers[1]!.path, `${m}/modules.dep`);
    assert.match(dep, /^kernel\/drivers\/net\/virtio_net\.ko: kernel\/drivers\/net\/net_failover\.ko/m);

    // a second assembly reuses the cached base layer
    const work2 = join(dir, 'work2');
    mkdirSync(work2);
    const again = await assembleInitramfs({
      kernel,
      guest: { nonce: 'def', mode: 'agent', net: false },
      workDir: work2,
    });
    assert.equal(again.layers[0]!.cached, true);
    assert.equal(again.layers[0]!.path, img.layers[0]!.path);
  });

  it('refuses a missing caller file, saying which', async () => {
    const work = join(dir, 'work3');
    mkdirSync(work);
    await assert.rejects(
      assembleInitramfs({
        kernel,
        guest: { nonce: 'x', mode: 'agent', net: false },
        files: [{ from: join(dir, 'nope.ko') }],
        workDir: work,
      }),
      (e: unknown) => isSutureError(e) && e.code === 'VM-FILE-MISSING' && e.message.includes('nope.ko'),
    );
  });

  it('writes newc that cpio reads back byte for byte (symlinks, modes, odd sizes)', async () => {
    const out = join(dir, 'a.cpio.gz');
    await new CpioArchive()
      .file('a/b/c.txt', 'abc', 0o600)
      .file('odd', Buffer.alloc(5, 7))
      .symlink('a/link', 'b/c.txt')
      .writeGzip(out);
    const listing = execFileSync('sh', ['-c', `zcat '${out}' | cpio -tv --quiet`], { encoding: 'utf8' });
    assert.match(listing, /^-rw------- .* a\/b\/c\.txt$/m);
    assert.match(listing, /^lrwxrwxrwx .* a\/link -> b\/c\.txt$/m);
    assert.match(listing, /^drwxr-xr-x .* a\/b$/m);
    assert.equal(cpioCat(out, 'odd'), '\x07'.repeat(5));
  });
});

describe('node wrapper', () => {
  it('passes the flags and the arguments, and refuses anything that is not a flag', () => {
    assert.equal(
      nodeWrapper(['--no-opt', '--max-old-space-size=256']),
      '#!/bin/sh\nexec /usr/bin/node --no-opt --max-old-space-size=256 "$@"\n',
    );
    assert.throws(
      () => nodeWrapper(['--x; rm -rf /']),
      (e: unknown) => isSutureError(e) && e.code === 'VM-NODE-FLAG',
    );
  });
});

describe('layer cache pruning', () => {
  it('keeps the newest and the recently used layers, drops the rest and old temporaries', async () => {
    const d = join(dir, 'prune');
    mkdirSync(d);
    const hourAgo = new Date(Date.now() - 2 * 3_600_000);
    const names = [
      'suture-a.cpio.gz',
      'suture-b.cpio.gz',
      'suture-c.cpio.gz',
      'suture-d.cpio.gz',
      'node-x.cpio',
    ];
    names.forEach((n, i) => {
      writeFileSync(join(d, n), n);
      const t = new Date(hourAgo.getTime() - i * 60_000);
      utimesSync(join(d, n), t, t);
    });
    writeFileSync(join(d, 'suture-fresh.cpio.gz'), 'in use');
    writeFileSync(join(d, 'suture-e.cpio.gz.123.tmp'), 'left by a killed build');
    utimesSync(join(d, 'suture-e.cpio.gz.123.tmp'), hourAgo, hourAgo);
    writeFileSync(join(d, 'suture-new.cpio.gz'), 'just built');
    await pruneLayers(d, 'suture', join(d, 'suture-new.cpio.gz'));
    assert.deepEqual(readdirSync(d).sort(), [
      'node-x.cpio',
      'suture-a.cpio.gz',
      'suture-fresh.cpio.gz',
      'suture-new.cpio.gz',
    ]);
  });
});

describe('suture layer contents', () => {
  it('takes production dependencies only', () => {
    const pkgs = productionPackages(repoRoot()).map((p) => p.split('node_modules/').at(-1));
    for (const want of ['commander', 'zod']) assert.ok(pkgs.includes(want), `${want} missing`);
    for (const dev of ['typescript', '@biomejs/biome', 'playwright-core', '@types/node']) {
      assert.ok(!pkgs.includes(dev), `${dev} is dev-only`);
    }
  });

  it('includes the CLI and no tests', async () => {
    const files = await sutureFiles();
    const root = repoRoot();
    const rel = files.map((f) => f.slice(root.length + 1));
    for (const want of ['package.json', 'bin/suture.js', 'dist/cli/main.js', 'dist/vm/index.js']) {
      assert.ok(rel.includes(want), `${want} missing`);
    }
    assert.ok(!rel.some((f) => /^(dist|bin)\/.*\.test\.js$/.test(f)));
    assert.ok(!rel.some((f) => /^node_modules\/(typescript|@biomejs|playwright-core)\//.test(f)));
  });
});

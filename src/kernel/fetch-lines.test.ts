/*
 * Every kernel line for real (network): 6.12.117+deb12-cloud-amd64 (Debian 12's own 6.12, host gcc-12),
 * 6.12.117+deb13-cloud-amd64 (trixie, gcc-14 from a build root) and the generic flavour 6.1.0-53-amd64,
 * fetched through ensureKernel (the default 6.1.0-53-cloud-amd64 is fetch.test.ts's). Each
 * has its identity (the debug vmlinux's build id, the two differ), a tree of its own source version
 * whose code generation options survived preparation, and a module compiled through its toolchain
 * carries the image's vermagic and was compiled by the kernel's own compiler (the .comment note).
 *
 * Skipped, saying so, only when the kernel is not cached and SUTURE_FETCH_TESTS is unset;
 * scripts/test.sh sets it, so CI fetches them (about 2, 3 and 3 minutes cold).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { compilerFromConfig } from './compiler.js';
import { parseKernelConfig } from './config.js';
import { cachedDetails, ensureKernel } from './fetch.js';
import { kernelToolchain } from './kernel-toolchain.js';
import { isCached, listReleases } from './releases.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-fetchlines-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const IBT_LINE = [
  'X86_KERNEL_IBT',
  'CALL_PADDING',
  'PREFIX_SYMBOLS',
  'MITIGATION_RETHUNK',
  'MITIGATION_CALL_DEPTH_TRACKING',
];

const LINES = [
  {
    release: '6.12.117+deb12-cloud-amd64',
    suite: 'bookworm',
    version: '6.12.117-1~deb12u1',
    kind: 'host',
    makefile: [12, 117],
    codegen: IBT_LINE,
    modules: /\.ko\.xz$/,
  },
  {
    release: '6.12.117+deb13-cloud-amd64',
    suite: 'trixie',
    version: '6.12.117-1',
    kind: 'build-root',
    makefile: [12, 117],
    codegen: IBT_LINE,
    modules: /\.ko\.xz$/,
  },
  {
    release: '6.1.0-53-amd64',
    suite: 'bookworm',
    version: '6.1.187-1',
    kind: 'host',
    makefile: [1, 187],
    codegen: ['RETPOLINE', 'RETHUNK'],
    modules: /\.ko$/,
  },
] as const;

const buildIds = new Map<string, string>();

/** The vermagic modinfo reads from a module (.ko or .ko.xz). */
function vermagic(ko: string): string {
  const r = spawnSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** A minimal external module in `dir` (not a livepatch: that is the build stages' business). */
function writeProbeModule(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Kbuild'), 'obj-m := suture_probe.o\n');
  writeFileSync(
    join(dir, 'suture_probe.c'),
    [
      '#include <linux/module.h>',
      'static int __init probe_init(void) { return 0; }',
      'static void __exit probe_exit(void) {}',
      'module_init(probe_init);',
      'module_exit(probe_exit);',
      'MODULE_LICENSE("GPL");',
      '',
    ].join('\n'),
  );
}

function firstModule(dir: string): string {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const f = firstModule(p);
      if (f) return f;
    } else if (/\.ko(\.xz)?$/.test(e.name)) return p;
  }
  return '';
}

function run(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

for (const l of LINES) {
  test(`${l.release}: fetched with its identity, its own source and its own compiler`, async (t) => {
    if (!isCached(l.release) && !process.env.SUTURE_FETCH_TESTS) {
      t.skip(
        `${l.release} is not cached and SUTURE_FETCH_TESTS is unset: run \`suture kernel fetch ${l.release}\` or set SUTURE_FETCH_TESTS=1 (scripts/test.sh does)`,
      );
      return;
    }
    const k = await ensureKernel(l.release);
    assert.equal(k.debianVersion, l.version);
    const readelf = spawnSync('readelf', ['-n', k.vmlinux], { encoding: 'utf8' }).stdout;
    assert.equal(k.buildId, /Build ID: ([0-9a-f]+)/.exec(readelf)?.[1]);
    buildIds.set(l.release, k.buildId);
    const makefile = readFileSync(join(k.sourceTree, 'Makefile'), 'utf8');
    assert.match(makefile, new RegExp(`^PATCHLEVEL = ${l.makefile[0]}$`, 'm'));
    assert.match(makefile, new RegExp(`^SUBLEVEL = ${l.makefile[1]}$`, 'm'));
    const uts = readFileSync(join(k.sourceTree, 'include/generated/utsrelease.h'), 'utf8');
    assert.ok(uts.includes(`"${l.release}"`), uts);
    const image = parseKernelConfig(readFileSync(k.config, 'utf8'));
    const tree = parseKernelConfig(readFileSync(join(k.sourceTree, '.config'), 'utf8'));
    for (const o of l.codegen) {
      assert.equal(image.get(o), 'y', `the image has CONFIG_${o}`);
      assert.equal(tree.get(o), 'y', `the tree kept CONFIG_${o}`);
    }
    const rec = cachedDetails(l.release);
    assert.equal(rec?.suite, l.suite);
    assert.equal(rec?.toolchain?.kind, l.kind);

    // a module through the kernel's toolchain: the image's vermagic, compiled by the kernel's compiler
    const tc = await kernelToolchain(l.release);
    assert.equal(tc.kind, l.kind);
    const dir = join(tmp, l.release);
    writeProbeModule(dir);
    const c = tc.command(['make', '-C', k.sourceTree, `M=${dir}`, ...tc.makeArgs, 'modules'], {
      reach: [dir],
    });
    const r = await run(c.file, c.args);
    assert.equal(r.code, 0, r.out.split('\n').slice(-20).join('\n'));
    const ko = join(dir, 'suture_probe.ko');
    assert.ok(vermagic(ko).startsWith(`${l.release} `), vermagic(ko));
    const shipped = firstModule(join(k.modulesDir, 'kernel'));
    assert.match(shipped, l.modules, 'the 6.12 lines ship compressed modules, 6.1 plain ones');
    assert.equal(vermagic(ko), vermagic(shipped));
    if (l.kind === 'build-root') {
      // the host's gcc is another build: the tree refuses it instead of quietly reconfiguring itself
      const host = spawnSync('make', ['-C', k.sourceTree, 'kernelrelease'], { encoding: 'utf8' });
      assert.notEqual(host.status, 0);
      assert.match(host.stderr, /suture: this kernel is compiled by `\(Debian 14/);
    }
    const comment = spawnSync('readelf', ['-p', '.comment', ko], { encoding: 'utf8' }).stdout;
    const kernelCc = compilerFromConfig(image);
    assert.ok(kernelCc);
    assert.ok(
      comment.includes(`GCC: ${kernelCc.build}`),
      `module compiled by ${kernelCc.build}:\n${comment}`,
    );
  });
}

test('the deb12 and deb13 kernels of one version are different targets (build ids differ)', (t) => {
  const [a, b] = LINES.slice(0, 2).map((l) => buildIds.get(l.release));
  if (!a || !b) {
    t.skip('needs both 6.12.117 kernels (see above)');
    return;
  }
  assert.notEqual(a, b);
});

test('the list has every line with its suite, Debian version, compiler and cache state', async (t) => {
  if (!process.env.SUTURE_FETCH_TESTS && !LINES.every((l) => isCached(l.release))) {
    t.skip('reads the archives (trixie through Suture’s own index): set SUTURE_FETCH_TESTS=1');
    return;
  }
  const list = await listReleases();
  for (const l of LINES) {
    const r = list.find((x) => x.release === l.release);
    assert.ok(r, `${l.release} is listed`);
    assert.equal(r.suite, l.suite);
    assert.equal(r.debianVersion, l.version);
    assert.equal(r.cached, isCached(l.release));
    assert.equal(r.compiler, l.suite === 'trixie' ? 'gcc-14' : 'gcc-12', 'from the headers package');
  }
  const trixie = await listReleases({ suites: ['trixie'], flavours: ['amd64'] });
  assert.ok(trixie.length > 0);
  assert.ok(trixie.every((r) => r.suite === 'trixie' && r.flavour === 'amd64' && /\+deb13/.test(r.release)));
});

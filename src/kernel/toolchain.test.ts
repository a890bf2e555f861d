/*
 * Each kernel with its own compiler: the compiler named in CONFIG_CC_VERSION_TEXT is found on the host
 * (under any of its names) or in a build root of the kernel's suite; any other compiler build is
 * refused with KERNEL-COMPILER-MISMATCH. A command run in a root sees the cache, /tmp and the caller's
 * directories at the same paths (checked for real in a tiny busybox root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import type { Bootstrapper } from './build-root.js';
import { cacheRoot } from './cache.js';
import { type CompilerId, parseCompilerText, probeCompiler, sameCompiler } from './compiler.js';
import { parseKernelConfig } from './config.js';
import { bindSet, rootCommand, toolchainForConfig } from './toolchain.js';

const work = mkdtempSync(join(tmpdir(), 'suture-toolchain-'));
after(() => rmSync(work, { recursive: true, force: true }));

const cfg = (text: string) => parseKernelConfig(`CONFIG_CC_VERSION_TEXT="${text}"\nCONFIG_LIVEPATCH=y\n`);
const code = (c: string) => (e: unknown) => (e as SutureError).code === c;
const hostWith =
  (known: Record<string, string>) =>
  (p: string): CompilerId | undefined =>
    known[p] ? parseCompilerText(known[p]) : undefined;

test('a compiler is its build, whatever name it was invoked by', () => {
  const a = parseCompilerText('gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0');
  assert.deepEqual(a, {
    text: 'gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0',
    program: 'gcc-12',
    build: '(Debian 12.2.0-14+deb12u1) 12.2.0',
    family: 'gcc',
    major: 12,
  });
  assert.ok(sameCompiler(a, parseCompilerText('x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0')));
  assert.ok(!sameCompiler(a, parseCompilerText('gcc-12 (Debian 12.2.0-14) 12.2.0')), 'another package build');
  assert.equal(parseCompilerText('x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0').major, 14);
});

test("the host's own gcc, when it is the kernel's build: used as is, no CC override", async () => {
  const host = probeCompiler('gcc');
  assert.ok(host, 'gcc is installed (scripts/setup.sh)');
  const tc = await toolchainForConfig(cfg(`gcc-${host.major} ${host.build}`), 'bookworm', {
    hostSuite: 'bookworm',
  });
  assert.equal(tc.kind, 'host');
  assert.deepEqual(tc.makeArgs, []);
  assert.equal(tc.compiler.build, host.build);
  assert.deepEqual(tc.command(['make', '-C', '/x']), { file: 'make', args: ['-C', '/x'] });
});

test('when plain gcc is another build but the named one matches, every make gets CC=<that name>', async () => {
  const tc = await toolchainForConfig(cfg('gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0'), 'bookworm', {
    hostSuite: 'bookworm',
    probeHost: hostWith({
      gcc: 'gcc (Debian 13.2.0-1) 13.2.0',
      'gcc-12': 'gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0',
    }),
  });
  assert.equal(tc.kind, 'host');
  assert.deepEqual(tc.makeArgs, ['CC=gcc-12']);
});

test("a kernel of the host's suite whose compiler build the host lacks is refused, never built with another", async () => {
  await assert.rejects(
    toolchainForConfig(cfg('gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0'), 'bookworm', {
      hostSuite: 'bookworm',
      probeHost: hostWith({
        gcc: 'gcc (Debian 12.2.0-14) 12.2.0',
        'gcc-12': 'gcc-12 (Debian 12.2.0-14) 12.2.0',
      }),
    }),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      assert.equal(d.code, 'KERNEL-COMPILER-MISMATCH');
      assert.match(d.message, /12\.2\.0-14\+deb12u1/);
      assert.match(d.message, /\(Debian 12\.2\.0-14\) 12\.2\.0/);
      return true;
    },
  );
  await assert.rejects(
    toolchainForConfig(parseKernelConfig('CONFIG_LIVEPATCH=y\n'), 'bookworm'),
    code('KERNEL-COMPILER-UNKNOWN'),
  );
});

const trixieRoot: Bootstrapper = async (_s, dir) => {
  mkdirSync(join(dir, 'usr/bin'), { recursive: true });
  writeFileSync(join(dir, 'usr/bin/gcc'), 'gcc (Debian 14.2.0-19) 14.2.0');
};
const probeRoot = (dir: string) => parseCompilerText(readFileSync(join(dir, 'usr/bin/gcc'), 'utf8'));

test("another suite's compiler comes from a build root of that suite, and commands run inside it", async () => {
  const root = join(work, 'cache');
  const tc = await toolchainForConfig(cfg('x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0'), 'trixie', {
    hostSuite: 'bookworm',
    probeHost: hostWith({ gcc: 'gcc (Debian 12.2.0-14+deb12u1) 12.2.0' }),
    root,
    bootstrap: trixieRoot,
    probe: probeRoot,
  });
  assert.equal(tc.kind, 'build-root');
  assert.ok(tc.root?.startsWith(join(root, 'entries', 'root-trixie-')));
  assert.deepEqual(tc.makeArgs, []);
  const c = tc.command(['make', '-C', '/src/tree', 'modules'], { cwd: '/src/tree', reach: ['/work/mod'] });
  assert.equal(c.file, 'unshare');
  assert.deepEqual(c.args.slice(0, 3), ['--mount', '--propagation', 'private']);
  assert.deepEqual(c.args.slice(-4), ['make', '-C', '/src/tree', 'modules']);
  for (const d of [cacheRoot(), '/tmp', '/work/mod', '/src/tree']) assert.ok(c.args.includes(d), d);
});

test("a build root whose compiler is not the kernel's build is refused", async () => {
  await assert.rejects(
    toolchainForConfig(cfg('x86_64-linux-gnu-gcc-14 (Debian 14.2.0-23) 14.2.0'), 'trixie', {
      hostSuite: 'bookworm',
      probeHost: hostWith({}),
      root: join(work, 'cache2'),
      bootstrap: trixieRoot,
      probe: probeRoot,
    }),
    code('KERNEL-COMPILER-MISMATCH'),
  );
});

test('bind mounts: outermost directories only, each once', () => {
  assert.deepEqual(
    bindSet(['/tmp/a', '/tmp', '/root/.cache/suture', '/root/.cache/suture/', '/tmpx', 'rel', '/']),
    ['/tmp', '/tmpx', '/root/.cache/suture'],
  );
});

test('a command in a root sees the caller’s directories at the same paths, and writes through', (t) => {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) return t.skip('busybox-static is not installed (scripts/setup.sh installs it)');
  const root = join(work, 'bbroot');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(busybox, join(root, 'bin', 'busybox'));
  for (const app of ['sh', 'cat', 'cp', 'ls']) symlinkSync('busybox', join(root, 'bin', app));
  const scratch = mkdtempSync(join(work, 'scratch-'));
  writeFileSync(join(scratch, 'in.txt'), 'from the host\n');
  const c = rootCommand(
    root,
    ['/bin/sh', '-c', 'cat in.txt > out.txt && ls /proc/self >/dev/null && echo ok'],
    scratch,
    [scratch],
  );
  const r = spawnSync(c.file, c.args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
  assert.equal(readFileSync(join(scratch, 'out.txt'), 'utf8'), 'from the host\n');
  assert.ok(!existsSync(join(root, 'bin', 'in.txt')));
});

test('a cached kernel keeps the root its tree was prepared in while that root is in the cache', async () => {
  const root = join(work, 'cache3');
  const opts = {
    hostSuite: 'bookworm',
    probeHost: hostWith({}),
    root,
    bootstrap: trixieRoot,
    probe: probeRoot,
  };
  const text = 'x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0';
  const first = await toolchainForConfig(cfg(text), 'trixie', opts);
  const never: Bootstrapper = async () => {
    throw new Error('the known root must be used, not a new one');
  };
  const again = await toolchainForConfig(cfg(text), 'trixie', {
    ...opts,
    bootstrap: never,
    knownRoot: first.root,
  });
  assert.equal(again.root, first.root);
  // gone from the cache: a root is made again
  await assert.rejects(
    toolchainForConfig(cfg(text), 'trixie', {
      ...opts,
      root: join(work, 'cache4'),
      bootstrap: never,
      knownRoot: join(work, 'gone'),
    }),
    /must be used/,
  );
});

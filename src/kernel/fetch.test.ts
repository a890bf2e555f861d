/*
 * The real target kernel through ensureKernel (fetched into SUTURE_CACHE by the set-up; fetched here
 * if missing): its build id is the debug vmlinux's as binutils reads it, the warm path needs neither
 * apt nor the network, and a module built against the prepared tree carries the image's vermagic and
 * the image's symbol CRCs (modversions), so the kernel accepts it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { buildModule, moduleVermagic } from '../klp/kbuild.js';
import { writeSkeleton } from '../klp/skeleton.js';
import { parseKernelConfig } from './config.js';
import { ensureKernel, openCachedKernel } from './fetch.js';
import { defaultRelease, type KernelTarget } from './target.js';

let k: KernelTarget;
const tmp = mkdtempSync(join(tmpdir(), 'suture-fetch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

before(async () => {
  k = await ensureKernel(defaultRelease());
});

function firstKo(dir: string): string {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const f = firstKo(p);
      if (f) return f;
    } else if (e.name.endsWith('.ko')) return p;
  }
  return '';
}

test('the target is complete and its build id is the debug vmlinux’s', () => {
  assert.equal(k.release, defaultRelease());
  assert.match(k.debianVersion, /^\d+\.\d+\.\d+-\d+$/);
  const readelf = spawnSync('readelf', ['-n', k.vmlinux], { encoding: 'utf8' }).stdout;
  assert.equal(k.buildId, /Build ID: ([0-9a-f]+)/.exec(readelf)?.[1]);
  for (const f of [k.vmlinuz, k.config, join(k.modulesDir, 'modules.dep'), k.moduleSymvers]) {
    assert.ok(statSync(f).size > 0, f);
  }
  assert.ok(statSync(k.debugModulesDir).isDirectory());
  const uts = readFileSync(join(k.sourceTree, 'include/generated/utsrelease.h'), 'utf8');
  assert.match(uts, new RegExp(`UTS_RELEASE "${k.release.replace(/\./g, '\\.')}"`));
  const makefile = readFileSync(join(k.sourceTree, 'Makefile'), 'utf8');
  const upstream = k.debianVersion.replace(/-[^-]*$/, '').split('.');
  assert.match(makefile, new RegExp(`^SUBLEVEL = ${upstream[2]}$`, 'm'), 'the source is the image’s version');
  const image = parseKernelConfig(readFileSync(k.config, 'utf8'));
  const tree = parseKernelConfig(readFileSync(join(k.sourceTree, '.config'), 'utf8'));
  for (const o of ['LIVEPATCH', 'MODVERSIONS', 'DYNAMIC_FTRACE_WITH_REGS', 'RETPOLINE', 'UNWINDER_ORC']) {
    assert.equal(tree.get(o), image.get(o), `CONFIG_${o}`);
  }
});

test('the warm path needs no apt: it works with an empty PATH', async () => {
  const path = process.env.PATH;
  process.env.PATH = '';
  try {
    const again = await ensureKernel(defaultRelease());
    assert.deepEqual(again, k);
    assert.deepEqual(openCachedKernel(defaultRelease()), k);
  } finally {
    process.env.PATH = path;
  }
});

test('a module built against the prepared tree has the image’s vermagic and symbol CRCs', async () => {
  const dir = join(tmp, 'sample');
  writeSkeleton(dir, { symbol: 'cmdline_proc_show', name: 'livepatch_sample' });
  const lines: string[] = [];
  const r = await buildModule(dir, k, { onOutput: (l) => lines.push(l) });
  assert.equal(r.ko, join(dir, 'livepatch_sample.ko'));
  assert.ok(
    lines.some((l) => l.includes('LD [M]')),
    'kbuild output is streamed',
  );
  const shipped = firstKo(join(k.modulesDir, 'kernel'));
  assert.ok(shipped, 'the image ships modules');
  assert.equal(moduleVermagic(r.ko), moduleVermagic(shipped));
  assert.ok(moduleVermagic(r.ko).startsWith(`${k.release} `));
  // modversions: every CRC the module records must be the image's (Module.symvers of the headers)
  const symvers = new Map(
    readFileSync(k.moduleSymvers, 'utf8')
      .split('\n')
      .map((l) => l.split('\t'))
      .map((f) => [f[1] ?? '', Number.parseInt(f[0] ?? '', 16)] as const),
  );
  const dump = spawnSync('modprobe', ['--dump-modversions', r.ko], { encoding: 'utf8' });
  assert.equal(dump.status, 0, dump.stderr);
  const crcs = dump.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  assert.ok(
    crcs.some(([, s]) => s === 'klp_enable_patch'),
    'klp_enable_patch is versioned',
  );
  for (const [crc, sym] of crcs) {
    if (sym === 'module_layout') continue;
    assert.equal(Number.parseInt(crc ?? '', 16), symvers.get(sym ?? ''), `CRC of ${sym}`);
  }
});

test('compiler errors come back as MODULE-BUILD-FAILED with the compiler’s own words', async () => {
  const dir = join(tmp, 'broken');
  writeSkeleton(dir, { symbol: 'cmdline_proc_show', name: 'broken' });
  const c = join(dir, 'broken.c');
  writeFileSync(c, readFileSync(c, 'utf8').replace('return 0;', 'return undeclared_thing;'));
  await assert.rejects(buildModule(dir, k), (e: unknown) => {
    const d = (e as SutureError).diagnostic;
    assert.equal(d.code, 'MODULE-BUILD-FAILED');
    assert.ok(
      d.detail?.some((l) => /broken\.c:\d+:\d+: error: .undeclared_thing. undeclared/.test(l)),
      d.detail?.join('\n'),
    );
    return true;
  });
  const todo = join(tmp, 'todo');
  writeSkeleton(todo, { symbol: 'meminfo_proc_show' });
  await assert.rejects(buildModule(todo, k), (e: unknown) =>
    ((e as SutureError).diagnostic.detail ?? []).some((l) =>
      l.includes('TODO: write the fixed meminfo_proc_show()'),
    ),
  );
});

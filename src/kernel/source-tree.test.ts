/*
 * The source tree's KERNELRELEASE pin: the kernel Makefile is rewritten so every build, whatever its
 * command line, generates UTS_RELEASE = the Debian ABI name (the vermagic the image's kernel accepts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { guardCompiler, makefileVersion, pinKernelRelease } from './source-tree.js';

// The lines of Linux 6.1's top Makefile that compute the release, reduced to a runnable makefile.
const MAKEFILE = `VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = 187
EXTRAVERSION =
KERNELRELEASE = $(shell cat include/config/kernel.release 2> /dev/null)
KERNELVERSION = $(VERSION)$(if $(PATCHLEVEL),.$(PATCHLEVEL)$(if $(SUBLEVEL),.$(SUBLEVEL)))$(EXTRAVERSION)
filechk_kernel.release = \\
\techo "$(KERNELVERSION)$$($(CONFIG_SHELL) $(srctree)/scripts/setlocalversion $(srctree))"
show:
\t@echo "$(KERNELRELEASE)"
\t@$(filechk_kernel.release)
`;

test('the Makefile version is read from VERSION/PATCHLEVEL/SUBLEVEL', () => {
  assert.equal(makefileVersion(MAKEFILE), '6.1.187');
});

test('KERNELRELEASE is pinned even against a stale kernel.release and a command-line value', () => {
  const dir = mkdtempSync(join(tmpdir(), 'suture-pin-'));
  try {
    writeFileSync(join(dir, 'Makefile'), pinKernelRelease(MAKEFILE, '6.1.0-53-cloud-amd64'));
    mkdirSync(join(dir, 'include/config'), { recursive: true });
    writeFileSync(join(dir, 'include/config/kernel.release'), '6.1.187\n');
    const r = spawnSync('make', ['-s', '-C', dir, 'show', 'KERNELRELEASE=6.1.187'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['6.1.0-53-cloud-amd64', '6.1.0-53-cloud-amd64']);
    assert.match(
      readFileSync(join(dir, 'Makefile'), 'utf8'),
      /override KERNELRELEASE = 6\.1\.0-53-cloud-amd64/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unexpected Makefile is refused rather than built with the wrong vermagic', () => {
  assert.throws(
    () =>
      pinKernelRelease(
        MAKEFILE.replace('KERNELRELEASE = $(shell', 'KERNELRELEASE := $(shell'),
        '6.1.0-53-cloud-amd64',
      ),
    (e: unknown) => (e as SutureError).code === 'KERNEL-TREE-UNEXPECTED',
  );
  assert.throws(
    () => pinKernelRelease(MAKEFILE, '6.1.0-53 $(shell id)'),
    (e: unknown) => (e as SutureError).code === 'KERNEL-BAD-RELEASE',
  );
});

// The lines of Linux 6.12's top Makefile that compute the release, reduced to a runnable makefile.
const MAKEFILE_612 = `VERSION = 6
PATCHLEVEL = 12
SUBLEVEL = 117
EXTRAVERSION =
KERNELRELEASE = $(call read-file, include/config/kernel.release)
ifeq ($(origin KERNELRELEASE),file)
filechk_kernel.release = $(srctree)/scripts/setlocalversion $(srctree)
else
filechk_kernel.release = echo $(KERNELRELEASE)
endif
CC = gcc
show:
\t@echo "$(KERNELRELEASE)"
\t@$(filechk_kernel.release)
`;

test("6.12's Makefile (read-file) is pinned too: kernel.release is written from the override", () => {
  const dir = mkdtempSync(join(tmpdir(), 'suture-pin612-'));
  try {
    writeFileSync(join(dir, 'Makefile'), pinKernelRelease(MAKEFILE_612, '6.12.117+deb13-cloud-amd64'));
    mkdirSync(join(dir, 'include/config'), { recursive: true });
    writeFileSync(join(dir, 'include/config/kernel.release'), '6.12.117\n');
    const r = spawnSync('make', ['-s', '-C', dir, 'show', 'KERNELRELEASE=6.12.117'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      '6.12.117+deb13-cloud-amd64',
      '6.12.117+deb13-cloud-amd64',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tree guarded for its compiler builds with that compiler build and fails with any other', () => {
  const host = spawnSync('gcc', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';
  const build = host.slice(host.indexOf(' ') + 1);
  const dir = mkdtempSync(join(tmpdir(), 'suture-guard-'));
  try {
    const make = (want: string, ...args: string[]) => {
      writeFileSync(
        join(dir, 'Makefile'),
        guardCompiler(pinKernelRelease(MAKEFILE_612, '6.12.117+deb12-amd64'), want),
      );
      return spawnSync('make', ['-s', '-C', dir, 'show', ...args], { encoding: 'utf8' });
    };
    const ok = make(build);
    assert.equal(ok.status, 0, ok.stderr);
    const bad = make('(Debian 14.2.0-19) 14.2.0');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /compiled by `\(Debian 14\.2\.0-19\) 14\.2\.0`, but gcc is/);
    // the first pass of kbuild only re-invokes make: the guard waits for the real one
    assert.equal(make('(Debian 14.2.0-19) 14.2.0', 'need-sub-make=1').status, 0);
    assert.throws(
      () => guardCompiler(MAKEFILE_612, 'gcc $(shell id)'),
      (e: unknown) => (e as SutureError).code === 'KERNEL-TREE-UNEXPECTED',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

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
import { makefileVersion, pinKernelRelease } from './source-tree.js';

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

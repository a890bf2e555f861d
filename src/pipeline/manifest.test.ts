/*
 * The manifest's versions: the livepatch's is the caller's (default 1), the tool's is package.json's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { KernelTarget } from '../kernel/target.js';
import { manifestSchema } from '../manifest/manifest.js';
import { DEFAULT_PATCH_VERSION, makeManifest } from './manifest.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-manifest-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const target = {
  release: '6.1.0-53-cloud-amd64',
  buildId: 'ab'.repeat(20),
  debianVersion: '6.1.187-1',
} as KernelTarget;

function manifestFor(version?: string) {
  const ko = join(dir, 'livepatch-meminfo.ko');
  writeFileSync(ko, 'not really a module');
  return makeManifest({
    name: 'meminfo',
    ...(version === undefined ? {} : { version }),
    replace: false,
    target,
    ko,
    diffText: '--- a/x\n+++ b/x\n',
    objects: [
      {
        name: 'vmlinux',
        functions: [{ name: 'meminfo_proc_show', sympos: 0, file: 'fs/proc/meminfo.c', change: 'changed' }],
      },
    ],
  });
}

test('the caller sets the livepatch version; without one it is 1', () => {
  assert.equal(DEFAULT_PATCH_VERSION, '1');
  assert.equal(manifestFor().version, '1');
  const m = manifestFor('2026.11.24-1');
  assert.equal(m.version, '2026.11.24-1');
  assert.equal(manifestSchema.parse(JSON.parse(JSON.stringify(m))).version, '2026.11.24-1');
});

test("the tool version is package.json's", () => {
  const pkg = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string };
  assert.equal(manifestFor().tool.version, pkg.version);
});

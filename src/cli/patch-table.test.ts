/*
 * The patch table of `suture publish` and `suture kernels --patches`: one row a patch, the build id
 * cut to 12 hex digits, '-' for no CVEs, and the state column only when asked for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest } from '../manifest/manifest.js';
import type { PatchRecord } from '../server/store.js';
import { renderPatchTable } from './patch-table.js';

function patch(id: string, extra: Partial<PatchRecord>): PatchRecord {
  const manifest = parseManifest({
    schema: 1,
    name: 'cmdline',
    kernel: { release: '6.1.0-53-cloud-amd64', buildId: 'ab'.repeat(20) },
    objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0 }] }],
    module: { file: 'livepatch-cmdline.ko', sha256: 'a'.repeat(64), name: 'livepatch_cmdline' },
    tool: { name: 'suture', version: '0.1.0' },
  });
  return {
    id,
    name: manifest.name,
    version: '1',
    kernelRelease: manifest.kernel.release,
    buildId: manifest.kernel.buildId,
    moduleName: manifest.module.name,
    manifest,
    signature: 's',
    sha256: manifest.module.sha256,
    size: 1,
    cves: [],
    description: '',
    publishedAt: '2026-06-01T00:00:00.000Z',
    tiers: ['canary'],
    ...extra,
  };
}

test('a row a patch: short build id, tiers and CVEs joined, "-" for none', () => {
  const lines = renderPatchTable([
    patch('p1', { cves: ['CVE-2026-1', 'CVE-2026-2'], tiers: ['canary', 'stable'] }),
  ])
    .split('\n')
    .map((l) => l.split(/\s{2,}/));
  assert.deepEqual(lines, [
    ['patch', 'name', 'version', 'kernel', 'build id', 'tiers', 'CVEs'],
    ['p1', 'cmdline', '1', '6.1.0-53-cloud-amd64', 'abababababab', 'canary,stable', 'CVE-2026-1,CVE-2026-2'],
  ]);
});

test('with state, each patch says active or revoked before its CVEs', () => {
  const lines = renderPatchTable([patch('p1', {}), patch('p2', { revokedAt: '2026-06-02T00:00:00.000Z' })], {
    state: true,
  })
    .split('\n')
    .map((l) => l.split(/\s{2,}/));
  assert.deepEqual(
    lines.map((l) => [l[0], l[6], l[7]]),
    [
      ['patch', 'state', 'CVEs'],
      ['p1', 'active', '-'],
      ['p2', 'revoked', '-'],
    ],
  );
});

/*
 * The patch table of `suture publish` and `suture kernels --patches`: one row a patch, the build id
 * cut to 12 hex digits, '-' for no CVEs, and the state column only when asked for.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PatchRecord } from '../server/store.js';
import { patchRecord, RELEASE } from '../server/testing/fleet-fixture.js';
import { renderPatchTable } from './patch-table.js';

const patch = (id: string, extra: Partial<PatchRecord>): PatchRecord => ({ ...patchRecord(id), ...extra });

test('a row a patch: short build id, tiers and CVEs joined, "-" for none', () => {
  const lines = renderPatchTable([
    patch('p1', { cves: ['CVE-2026-1', 'CVE-2026-2'], tiers: ['canary', 'stable'] }),
  ])
    .split('\n')
    .map((l) => l.split(/\s{2,}/));
  assert.deepEqual(lines, [
    ['patch', 'name', 'version', 'kernel', 'build id', 'tiers', 'CVEs'],
    ['p1', 'cmdline', '1', RELEASE, '1f2e3d4c5b6a', 'canary,stable', 'CVE-2026-1,CVE-2026-2'],
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

/*
 * The host's zod-free manifest reader (manifest-read.ts) against manifest/manifest.ts's schema: the
 * same value for valid manifests (defaults filled in), a refusal (MANIFEST-INVALID) for each broken
 * one, and the field named.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { parseManifest } from '../manifest/manifest.js';
import { readManifest } from './manifest-read.js';

const full = {
  schema: 1,
  name: 'meminfo',
  version: '2026.11.24-1',
  kernel: { release: '6.1.0-53-cloud-amd64', buildId: 'a'.repeat(40), debianVersion: '6.1.158-1' },
  replace: true,
  objects: [
    {
      name: 'vmlinux',
      functions: [{ name: 'meminfo_proc_show', sympos: 0, file: 'fs/proc/meminfo.c', change: 'changed' }],
    },
    { name: 'xfs', functions: [{ name: 'xfs_new', sympos: 2, change: 'new' }] },
  ],
  module: { file: 'livepatch-meminfo.ko', sha256: 'b'.repeat(64), name: 'livepatch_meminfo' },
  source: { diffSha256: 'c'.repeat(64), description: 'fix' },
  cves: ['CVE-2026-12345'],
  tool: { name: 'suture', version: '0.1.0' },
  createdAt: '2026-12-01T17:00:00.123Z',
};
const minimal = {
  schema: 1,
  name: 'x',
  kernel: { release: 'r', buildId: 'a'.repeat(40) },
  objects: [{ name: 'vmlinux', functions: [{ name: 'f', sympos: 0 }] }],
  module: { file: 'f.ko', sha256: 'b'.repeat(64), name: 'livepatch_x' },
  tool: { name: 'suture', version: '0' },
};

const broken: Array<[string, (m: Record<string, unknown>) => void]> = [
  ['schema 2', (m) => (m.schema = 2)],
  ['upper-case name', (m) => (m.name = 'Meminfo')],
  ['empty version', (m) => (m.version = '')],
  ['short build id', (m) => ((m.kernel as Record<string, unknown>).buildId = 'a'.repeat(39))],
  ['upper-case sha256', (m) => ((m.module as Record<string, unknown>).sha256 = 'B'.repeat(64))],
  ['no objects', (m) => (m.objects = [])],
  ['negative sympos', (m) => (m.objects = [{ name: 'vmlinux', functions: [{ name: 'f', sympos: -1 }] }])],
  ['fractional sympos', (m) => (m.objects = [{ name: 'vmlinux', functions: [{ name: 'f', sympos: 0.5 }] }])],
  [
    'bad change',
    (m) => (m.objects = [{ name: 'vmlinux', functions: [{ name: 'f', sympos: 0, change: 'x' }] }]),
  ],
  ['replace as string', (m) => (m.replace = 'yes')],
  ['unknown field', (m) => (m.extra = 1)],
  ['unknown kernel field', (m) => ((m.kernel as Record<string, unknown>).arch = 'x86')],
  ['bad CVE', (m) => (m.cves = ['CVE-26-1'])],
  ['other tool', (m) => (m.tool = { name: 'kpatch', version: '1' })],
  ['bad createdAt', (m) => (m.createdAt = 'yesterday')],
  ['no module', (m) => delete m.module],
  ['array', (m) => Object.assign(m, { objects: 'vmlinux' })],
];

function refusal(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(isSutureError(e), String(e));
    assert.equal(e.code, 'MANIFEST-INVALID');
    return e.diagnostic.detail ?? [];
  }
  assert.fail('expected MANIFEST-INVALID');
}

describe('readManifest agrees with manifestSchema', () => {
  for (const [name, m] of [
    ['full', full],
    ['minimal (defaults)', minimal],
  ] as const) {
    test(`${name}: the same value`, () => {
      assert.deepEqual(readManifest(JSON.stringify(m), 'm.json'), parseManifest(JSON.stringify(m), 'm.json'));
    });
  }
  for (const [name, change] of broken) {
    test(`${name}: refused by both`, () => {
      const m = structuredClone(full) as Record<string, unknown>;
      change(m);
      refusal(() => parseManifest(m));
      const detail = refusal(() => readManifest(m));
      assert.ok(detail.length > 0);
    });
  }
  test('not JSON', () => {
    refusal(() => readManifest('{', 'm.json'));
  });
});

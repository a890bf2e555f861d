/*
 * The host's zod-free manifest reader (manifest-read.ts) against manifest/manifest.ts's schema: the
 * same value for valid manifests (defaults filled in), a refusal (MANIFEST-INVALID) for each broken
 * one, and the field named. Parity: the reader's MANIFEST_FIELDS is the table of objects and fields
 * walked out of manifestSchema, the full fixture has every field of it, and each field left out or
 * set to null is taken or refused alike by both.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { isSutureError } from '../diagnostic.js';
import { manifestSchema, parseManifest } from '../manifest/manifest.js';
import { MANIFEST_FIELDS, readManifest } from './manifest-read.js';

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

/** The objects of a zod schema by path (`[]`: each element of an array) with their field names. */
function fieldsOf(schema: z.ZodType, path: string, out: Record<string, string[]>): Record<string, string[]> {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault)
    return fieldsOf(schema.unwrap() as z.ZodType, path, out);
  if (schema instanceof z.ZodArray) return fieldsOf(schema.element as z.ZodType, `${path}[]`, out);
  if (schema instanceof z.ZodObject) {
    const shape = schema.shape as Record<string, z.ZodType>;
    out[path] = Object.keys(shape);
    for (const [k, v] of Object.entries(shape)) fieldsOf(v, path ? `${path}.${k}` : k, out);
  }
  return out;
}

/** The object at a MANIFEST_FIELDS path inside a manifest value (first element of each array). */
function objectAt(m: Record<string, unknown>, path: string): Record<string, unknown> | undefined {
  let at: unknown = m;
  for (const part of path ? path.split('.') : []) {
    const name = part.replace(/\[\]$/, '');
    at = (at as Record<string, unknown> | undefined)?.[name];
    if (part.endsWith('[]')) at = (at as unknown[] | undefined)?.[0];
  }
  return at as Record<string, unknown> | undefined;
}

/** The error path of a field (`objects[].functions[]` + `sympos` → `objects.0.functions.0.sympos`). */
const issuePath = (path: string, field: string) =>
  [path.replace(/\[\]/g, '.0'), field].filter(Boolean).join('.');

/** What a reader makes of a value: the manifest, or the refusal's detail lines. */
function outcome(read: (v: unknown) => unknown, v: unknown): { value?: unknown; refused?: string[] } {
  try {
    return { value: read(v) };
  } catch (e) {
    assert.ok(isSutureError(e), String(e));
    assert.equal(e.code, 'MANIFEST-INVALID');
    return { refused: e.diagnostic.detail ?? [] };
  }
}

describe('readManifest has the fields of manifestSchema, no more, no fewer', () => {
  const schemaFields = fieldsOf(manifestSchema, '', {});
  test('the same objects with the same fields', () => {
    const sorted = (t: Record<string, readonly string[]>) =>
      Object.fromEntries(
        Object.entries(t)
          .map(([k, v]) => [k, [...v].sort()] as const)
          .sort(([a], [b]) => a.localeCompare(b)),
      );
    assert.deepEqual(sorted(MANIFEST_FIELDS), sorted(schemaFields));
  });
  test('the full fixture has every field, so the value comparison sees them all', () => {
    for (const [path, fields] of Object.entries(schemaFields)) {
      const o = objectAt(full, path);
      assert.ok(o, `full has no ${path}`);
      for (const f of fields) assert.ok(f in o, `full has no ${issuePath(path, f)}`);
    }
  });
  for (const [path, fields] of Object.entries(schemaFields)) {
    for (const field of fields) {
      const where = issuePath(path, field);
      for (const [how, change] of [
        ['left out', (o: Record<string, unknown>) => delete o[field]],
        ['null', (o: Record<string, unknown>) => (o[field] = null)],
      ] as const) {
        test(`${where} ${how}: taken or refused alike`, () => {
          const m = structuredClone(full) as Record<string, unknown>;
          const o = objectAt(m, path);
          assert.ok(o);
          change(o);
          const zodSays = outcome(parseManifest, m);
          const hostSays = outcome(readManifest, m);
          if (zodSays.value !== undefined) assert.deepEqual(hostSays.value, zodSays.value);
          else {
            assert.ok(hostSays.refused, `readManifest took ${where} ${how}; manifestSchema refuses it`);
            for (const said of [zodSays.refused ?? [], hostSays.refused])
              assert.ok(
                said.some((d) => d.startsWith(where)),
                `the refusal names ${where}: ${said.join('; ')}`,
              );
          }
        });
      }
    }
  }
});

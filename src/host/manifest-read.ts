/*
 * Reading a manifest on the host path without the validation library.
 *
 * `suture apply`, `suture status` and the boot unit read manifest.json files; importing zod costs
 * about a second under TCG, most of the host commands' start-up. This reader applies the same rules
 * as manifest/manifest.ts's manifestSchema — the same fields, bounds, defaults and strictness (an
 * unknown field is refused) — with explicit checks, and throws the same MANIFEST-INVALID naming each
 * bad field. MANIFEST_FIELDS lists every object of a manifest with its fields; manifest-read.test.ts
 * derives the same table from manifestSchema and holds the two to each other, field by field, so a
 * field one side gains and the other lacks fails the test.
 */
import type { Manifest } from '../manifest/manifest.js';
import { manifestRefused, manifestValue } from '../manifest/manifest-input.js';

type Obj = Record<string, unknown>;

/** Every object of a manifest by its path (`[]`: each element of an array) with the fields it may have. */
export const MANIFEST_FIELDS = {
  '': [
    'schema',
    'name',
    'version',
    'kernel',
    'replace',
    'objects',
    'module',
    'source',
    'cves',
    'tool',
    'createdAt',
  ],
  kernel: ['release', 'buildId', 'debianVersion'],
  'objects[]': ['name', 'functions'],
  'objects[].functions[]': ['name', 'sympos', 'file', 'change'],
  module: ['file', 'sha256', 'name'],
  source: ['diffSha256', 'description'],
  tool: ['name', 'version'],
} as const satisfies Record<string, readonly string[]>;
const F = MANIFEST_FIELDS;

class Checker {
  readonly issues: string[] = [];
  fail(path: string, message: string): undefined {
    this.issues.push(`${path || '(root)'}: ${message}`);
    return undefined;
  }
  object(v: unknown, path: string, keys: readonly string[]): Obj | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return this.fail(path, 'object expected');
    const o = v as Obj;
    const extra = Object.keys(o).filter((k) => !keys.includes(k));
    if (extra.length) this.fail(path, `unrecognized key(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
    return o;
  }
  string(v: unknown, path: string, rule?: { min?: number; len?: number; re?: RegExp; what?: string }) {
    if (typeof v !== 'string') return this.fail(path, 'string expected');
    if (rule?.len !== undefined && v.length !== rule.len)
      return this.fail(path, `exactly ${rule.len} characters expected`);
    if (rule?.min !== undefined && v.length < rule.min)
      return this.fail(path, `at least ${rule.min} character(s) expected`);
    if (rule?.re && !rule.re.test(v)) return this.fail(path, rule.what ?? 'invalid');
    return v;
  }
  optString(v: unknown, path: string, rule?: { min?: number; len?: number; re?: RegExp; what?: string }) {
    return v === undefined ? undefined : this.string(v, path, rule);
  }
  array(v: unknown, path: string, min = 0): unknown[] | undefined {
    if (!Array.isArray(v)) return this.fail(path, 'array expected');
    if (v.length < min) return this.fail(path, `at least ${min} element(s) expected`);
    return v;
  }
}

const HEX = /^[0-9a-f]+$/;
const hex = (len: number) => ({ len, re: HEX, what: 'lowercase hex expected' });
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function functionsOf(c: Checker, v: unknown, path: string): Manifest['objects'][number]['functions'] {
  return (c.array(v, path) ?? []).map((f, i) => {
    const p = `${path}.${i}`;
    const o = c.object(f, p, F['objects[].functions[]']) ?? {};
    if (typeof o.sympos !== 'number' || !Number.isInteger(o.sympos) || o.sympos < 0)
      c.fail(`${p}.sympos`, 'integer >= 0 expected');
    const change = o.change === undefined ? 'changed' : o.change;
    if (change !== 'changed' && change !== 'new') c.fail(`${p}.change`, "'changed' or 'new' expected");
    const file = c.optString(o.file, `${p}.file`);
    return {
      name: c.string(o.name, `${p}.name`, { min: 1 }) as string,
      sympos: o.sympos as number,
      ...(file !== undefined ? { file } : {}),
      change: change as 'changed' | 'new',
    };
  });
}

function check(c: Checker, v: unknown): Manifest {
  const o = c.object(v, '', F['']) ?? {};
  if (o.schema !== 1) c.fail('schema', 'must be 1');
  const name = c.string(o.name, 'name', {
    re: /^[a-z0-9_-]{1,48}$/,
    what: 'lowercase letters, digits, - and _ only',
  });
  const version = o.version === undefined ? '1' : c.string(o.version, 'version', { min: 1 });
  const k = c.object(o.kernel, 'kernel', F.kernel) ?? {};
  const debianVersion = c.optString(k.debianVersion, 'kernel.debianVersion');
  const replace = o.replace === undefined ? false : o.replace;
  if (typeof replace !== 'boolean') c.fail('replace', 'boolean expected');
  const objects = (c.array(o.objects, 'objects', 1) ?? []).map((x, i) => {
    const ob = c.object(x, `objects.${i}`, F['objects[]']) ?? {};
    return {
      name: c.string(ob.name, `objects.${i}.name`, { min: 1 }) as string,
      functions: functionsOf(c, ob.functions, `objects.${i}.functions`),
    };
  });
  const m = c.object(o.module, 'module', F.module) ?? {};
  const s = o.source === undefined ? {} : (c.object(o.source, 'source', F.source) ?? {});
  const diffSha256 = c.optString(s.diffSha256, 'source.diffSha256', hex(64));
  const description = c.optString(s.description, 'source.description');
  const cves = (o.cves === undefined ? [] : (c.array(o.cves, 'cves') ?? [])).map((x, i) =>
    c.string(x, `cves.${i}`, { re: /^CVE-\d{4}-\d{4,}$/, what: 'CVE-YYYY-NNNN expected' }),
  );
  const t = c.object(o.tool, 'tool', F.tool) ?? {};
  if (t.name !== 'suture') c.fail('tool.name', "must be 'suture'");
  const createdAt = c.optString(o.createdAt, 'createdAt', { re: ISO, what: 'ISO date-time expected' });
  return {
    schema: 1,
    name: name as string,
    version: version as string,
    kernel: {
      release: c.string(k.release, 'kernel.release', { min: 1 }) as string,
      buildId: c.string(k.buildId, 'kernel.buildId', hex(40)) as string,
      ...(debianVersion !== undefined ? { debianVersion } : {}),
    },
    replace: replace as boolean,
    objects,
    module: {
      file: c.string(m.file, 'module.file', { min: 1 }) as string,
      sha256: c.string(m.sha256, 'module.sha256', hex(64)) as string,
      name: c.string(m.name, 'module.name', { min: 1 }) as string,
    },
    source: {
      ...(diffSha256 !== undefined ? { diffSha256 } : {}),
      ...(description !== undefined ? { description } : {}),
    },
    cves: cves as string[],
    tool: { name: 'suture', version: c.string(t.version, 'tool.version') as string },
    ...(createdAt !== undefined ? { createdAt } : {}),
  };
}

/** Parse untrusted manifest JSON (text or value) as parseManifest does, without zod. */
export function readManifest(input: string | unknown, where = 'manifest'): Manifest {
  const c = new Checker();
  const manifest = check(c, manifestValue(input, where));
  if (c.issues.length) throw manifestRefused(where, c.issues);
  return manifest;
}

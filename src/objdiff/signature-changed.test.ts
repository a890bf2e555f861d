/*
 * KLP-SIGNATURE-CHANGED on object pairs compiled here with gcc (-aux-info for the prototypes), and the
 * -aux-info parser on its own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseAuxInfo } from '../check/object/prototypes.js';
import { diffObjects, type ObjectDiff } from './objdiff.js';
import { ScratchGcc } from './testing/gcc-pair.js';

const gcc = new ScratchGcc('signature');

function compile(source: string): { object: string; aux: string } {
  const object = gcc.compile(source, { auxInfo: true });
  return { object, aux: `${object}.aux` };
}

async function pair(orig: string, patched: string): Promise<ObjectDiff> {
  const o = compile(orig);
  const p = compile(patched);
  return diffObjects(o.object, p.object, {
    prototypes: {
      original: parseAuxInfo(readFileSync(o.aux, 'utf8')),
      patched: parseAuxInfo(readFileSync(p.aux, 'utf8')),
    },
  });
}

const sig = (d: ObjectDiff) => d.refusals.filter((r) => r.code === 'KLP-SIGNATURE-CHANGED');

describe('KLP-SIGNATURE-CHANGED', () => {
  test('parses -aux-info lines: types kept, parameter names and storage class dropped', () => {
    const protos = parseAuxInfo(
      [
        '/* compiled from: . */',
        '/* a.c:3:NF */ static int helper (struct s *p, long int x); /* (p, x) struct s *p; long int x; */',
        '/* a.c:4:NF */ extern int api (const char *s, unsigned int n, ...); /* (s, n) const char *s; unsigned int n; */',
        '/* a.c:5:NC */ extern void k (void);',
        '/* a.c:6:NF */ extern int cb (int (*fn) (int a), int fn2); /* (fn, fn2) int (*fn) (); int fn2; */',
      ].join('\n'),
    );
    assert.equal(protos.get('helper')?.signature, 'int (struct s*, long int)');
    assert.equal(protos.get('helper')?.line, 3);
    assert.equal(protos.get('api')?.signature, 'int (const char*, unsigned int, ...)');
    assert.equal(protos.get('k')?.defined, false);
    assert.equal(protos.get('cb')?.signature, 'int (int(*)(int a), int)');
    const q = parseAuxInfo(
      [
        '/* a.c:3:NF */ extern int f (const int x, char *const p, const char *s); /* (x, p, s) const int x; char *const p; const char *s; */',
        '/* b.c:3:NF */ extern int f (int y, char *q, const char *t); /* (y, q, t) int y; char *q; const char *t; */',
        '/* c.c:3:NF */ extern int f (int y, char *q, char *t); /* (y, q, t) int y; char *q; char *t; */',
      ].join('\n'),
    );
    assert.equal(q.get('f')?.signature, 'int (int, char*, char*)', 'the last line wins per name');
    const sigOf = (line: string) => parseAuxInfo(line).get('f')?.signature;
    assert.equal(
      sigOf('/* a.c:3:NF */ extern int f (const int x, char *const p, const char *s); /* (x, p, s) */'),
      sigOf('/* b.c:3:NF */ extern int f (int y, char *q, const char *t); /* (y, q, t) */'),
      'top-level qualifiers and names do not count',
    );
  });

  test('a global function whose parameter type changed is refused', async () => {
    const d = await pair(
      'int g(int x) { return x * 3 + 1; }\n',
      'int g(long x) { return (int)(x * 3 + 2); }\n',
    );
    const r = sig(d);
    assert.equal(r.length, 1, JSON.stringify(d.refusals));
    assert.match(r[0]!.message, /`g`/);
    assert.ok(r[0]!.detail?.some((l) => /global/.test(l)));
    assert.ok(r[0]!.detail?.some((l) => /before: .*int x/.test(l)));
  });

  test('a global function whose return type changed is refused', async () => {
    const d = await pair('int g(int x) { return x + 1; }\n', 'long g(int x) { return x + 2L; }\n');
    assert.equal(sig(d).length, 1);
  });

  test('renaming a parameter is not a signature change', async () => {
    const d = await pair('int g(int x) { return x + 1; }\n', 'int g(int y) { return y + 2; }\n');
    assert.deepEqual(sig(d), []);
    assert.equal(d.functions.find((f) => f.name === 'g')?.change, 'changed');
  });

  test('a static function whose callers are all changed by the patch is accepted', async () => {
    const d = await pair(
      'static __attribute__((noinline)) int h(int x) { return x * 5; }\nint a(int x) { return h(x) + 1; }\n',
      'static __attribute__((noinline)) int h(long x) { return (int)(x * 5 + 1); }\nint a(int x) { return h((long)x << 1) + 1; }\n',
    );
    assert.equal(d.functions.find((f) => f.name === 'a')?.change, 'changed');
    assert.deepEqual(sig(d), [], JSON.stringify(d.refusals));
  });

  test('a static function called by a function the patch does not replace is refused', async () => {
    const d = await pair(
      'static __attribute__((noinline)) int h(int x) { return x * 5; }\nint a(int x) { return h(x) + 1; }\nint b(int x) { return x - 9; }\n',
      'static __attribute__((noinline)) int h(int x, int y) { return x * 5 + y; }\nint a(int x) { return h(x, 2) + 1; }\nint b(int x) { return h(x, 0) - 9; }\n',
    );
    // b changed too (it now calls h): all callers carried → accepted
    assert.deepEqual(sig(d), []);
    const d2 = await pair(
      'static __attribute__((noinline)) int h(int *x) { return *x * 5; }\nint a(int x) { return h(&x) + 1; }\nint b(int x) { return h(&x) - 9; }\n',
      'static __attribute__((noinline)) int h(unsigned int *x) { return *x * 5 + 1; }\nint a(int x) { return h(&x) + 1; }\nint b(int x) { return h(&x) - 9; }\n',
    );
    // only h's body and type changed: a and b keep their code and are not carried
    const r = sig(d2);
    assert.equal(r.length, 1, JSON.stringify(d2.refusals));
    assert.ok(r[0]!.detail?.some((l) => /callers the patch does not replace: a, b/.test(l)));
  });

  test('a static function whose address is in an ops table is refused', async () => {
    const d = await pair(
      'struct ops { int (*f)(int); };\nstatic int h(int x) { return x * 5; }\nconst struct ops my_ops = { .f = h };\n',
      'struct ops { int (*f)(int); };\nstatic int h(unsigned x) { return (int)x * 5 + 1; }\nconst struct ops my_ops = { .f = (int (*)(int))h };\n',
    );
    const r = sig(d);
    assert.equal(r.length, 1, JSON.stringify(d.refusals));
    assert.ok(r[0]!.detail?.some((l) => /address is taken in data/.test(l)));
  });
});

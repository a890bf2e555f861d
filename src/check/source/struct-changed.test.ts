/*
 * KLP-STRUCT-CHANGED from small diffs against small sources: fields added or changed inside a struct or
 * union definition are refused; initializers, function bodies and local struct types are not.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ChangedSource, structChanged, structSpans } from './struct-changed.js';

const SOURCE = `/* a file */
#include <linux/types.h>
#define INIT { 1, 2 }

struct foo {
	int a;
	/* a comment { */
	long b;
};

typedef struct {
	int x;
} bar_t;

static struct foo the_foo = {
	.a = 1,
	.b = 2,
};

union u {
	int i;
	struct {
		short lo, hi;
	} half;
};

static int f(struct foo *p)
{
	struct local { int z; } l = { 3 };
	return p->a + l.z;
}
`;

/** A one-hunk diff: `-`/`+`/` ` lines starting at original line `oldStart`. */
const src = (oldStart: number, lines: string[]): ChangedSource => ({
  path: 'fs/x.c',
  original: SOURCE,
  hunks: [{ oldStart, lines }],
});

describe('KLP-STRUCT-CHANGED', () => {
  test('finds the file-scope definitions and their lines, not initializers or local types', () => {
    const spans = structSpans(SOURCE).map((s) => `${s.kind} ${s.name} ${s.open}-${s.close}`);
    assert.deepEqual(spans, ['struct foo 5-9', 'struct bar_t 11-13', 'union u 20-25']);
  });

  test('a field added to a struct is refused with its name and file:line', () => {
    const d = structChanged([src(6, [' \tint a;', '+\tint added;', ' \t/* a comment { */'])]);
    assert.equal(d.length, 1);
    assert.equal(d[0]!.code, 'KLP-STRUCT-CHANGED');
    assert.match(d[0]!.message, /struct foo/);
    assert.deepEqual(d[0]!.location, { file: 'fs/x.c', line: 7 });
    assert.equal(d[0]!.severity, 'error');
  });

  test('a changed field type, in a typedef struct and in a nested anonymous struct of a union', () => {
    assert.match(structChanged([src(12, ['-\tint x;', '+\tlong x;'])])[0]!.message, /struct bar_t/);
    const d = structChanged([src(23, ['-\t\tshort lo, hi;', '+\t\tint lo, hi;'])]);
    assert.equal(d.length, 1);
    assert.match(d[0]!.message, /union u/);
  });

  test('an initializer change, a function body change, a local struct and a comment are not flagged', () => {
    assert.deepEqual(structChanged([src(16, ['-\t.a = 1,', '+\t.a = 5,', ' \t.b = 2,'])]), []);
    assert.deepEqual(
      structChanged([
        src(29, ['-\tstruct local { int z; } l = { 3 };', '+\tstruct local { long z; } l = { 3 };']),
      ]),
      [],
    );
    assert.deepEqual(structChanged([src(30, ['-\treturn p->a + l.z;', '+\treturn p->a - l.z;'])]), []);
    assert.deepEqual(
      structChanged([src(6, [' \tint a;', '+\t/* more words */', ' \t/* a comment { */'])]),
      [],
    );
  });

  test('a definition a .c file deletes whole is not flagged; in a header it is', () => {
    const del = ['-union u {', '-\tint i;', '-\tstruct {', '-\t\tshort lo, hi;', '-\t} half;', '-};'];
    assert.deepEqual(structChanged([src(20, del)]), []);
    assert.equal(structChanged([{ ...src(20, del), path: 'include/x.h' }]).length, 1);
    // deleting only a field is a change; so is deleting it while an added line still names it
    assert.equal(structChanged([src(21, del.slice(1, 2))]).length, 1);
    assert.equal(structChanged([src(20, [...del, '+union u { long i; };'])]).length, 1);
  });

  test('a new struct added between definitions is not a change of an existing one', () => {
    assert.deepEqual(structChanged([src(9, [' };', '+struct added {', '+\tint n;', '+};', ' '])]), []);
  });
});

/*
 * Changed compiler clones on gcc-built object pairs: carried when every caller is unchanged or carried
 * (objdiff/clones.ts), refused naming the caller that breaks the proof (KLP-RENAMED-SYMBOL).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cloneKind, shippedCloneName } from './clones.js';
import { diffObjects, type ObjectDiff } from './objdiff.js';
import { ScratchGcc } from './testing/gcc-pair.js';
import { writeDiffObject } from './write.js';

const gcc = new ScratchGcc('clones');
const compile = (source: string) => gcc.compile(source);
const pair = (o: string, p: string): Promise<ObjectDiff> => diffObjects(compile(o), compile(p));
const fn = (d: ObjectDiff, name: RegExp) => d.functions.find((f) => name.test(f.name));

const HEAD = 'struct s { int a, b, c[10]; };\nextern void sink(struct s *);\n';
/** a static helper gcc turns into `helper.isra.N` (it only reads p->a), and the callers named */
const unit = (body: string, callers: string[]) =>
  `${HEAD}static __attribute__((noinline)) int helper(struct s *p) { ${body} }\n${callers
    .map((c, i) => `int ${c}(struct s *p) { return helper(p) + ${i + 1}; }\n`)
    .join('')}`;

describe('compiler clones', () => {
  test('a changed clone whose callers are all unchanged is carried under the running name', async () => {
    const d = await pair(unit('return p->a * 3;', ['caller']), unit('return p->a * 5;', ['caller']));
    const clone = fn(d, /^helper\.isra\.\d+$/);
    assert.ok(clone, `fixture must keep an .isra clone: ${d.functions.map((f) => f.name)}`);
    assert.equal(clone.change, 'changed');
    // the proof: the caller's bytes are the same, so it passes what the new clone expects
    assert.equal(fn(d, /^caller$/)?.change, 'same');
    assert.deepEqual(clone.clone, { kind: 'isra' });
    assert.deepEqual(d.refusals, []);
    assert.equal(clone.included, true);
    const obj = await writeDiffObject(d, join(gcc.dir, 'same-callers.o'));
    assert.ok(obj.symbols.some((s) => s.name === clone.name && s.section));
  });

  test('a clone whose signature changed makes its callers change, and is carried with them', async () => {
    // the patched helper reads p->b too: IPA-SRA passes two scalars, so the caller's call changes
    const d = await pair(unit('return p->a * 3;', ['caller']), unit('return p->a * 3 + p->b;', ['caller']));
    const clone = fn(d, /^helper\.isra\.\d+$/);
    assert.ok(clone, `fixture must keep an .isra clone: ${d.functions.map((f) => f.name)}`);
    assert.equal(fn(d, /^caller$/)?.change, 'changed');
    assert.deepEqual(d.refusals, []);
    assert.deepEqual(
      d.functions
        .filter((f) => f.included)
        .map((f) => f.name)
        .sort(),
      ['caller', clone.name].sort(),
    );
  });

  test('a static function that becomes a clone is carried with its carried caller', async () => {
    const d = await pair(
      `${HEAD}static __attribute__((noinline)) int helper(struct s *p) { sink(p); return p->a * 3; }\nint caller(struct s *p) { return helper(p) + 1; }\n`,
      unit('return p->a * 5;', ['caller']),
    );
    const clone = fn(d, /^helper\.isra\.\d+$/);
    assert.ok(clone, `fixture must make an .isra clone: ${d.functions.map((f) => f.name)}`);
    assert.equal(clone.originalName, 'helper', 'correlated with the plain function it replaces');
    assert.equal(fn(d, /^caller$/)?.change, 'changed');
    assert.deepEqual(clone.clone, { kind: 'isra' });
    assert.deepEqual(d.refusals, []);
  });

  test('refused, naming the caller of the running kernel that nothing replaces', async () => {
    // `other` calls the old clone and is gone from the patched object: the running kernel keeps
    // calling the old clone from it, with a convention the new clone was not compiled for
    const d = await pair(unit('return p->a * 3;', ['caller', 'other']), unit('return p->a * 5;', ['caller']));
    const r = d.refusals.find((x) => x.code === 'KLP-RENAMED-SYMBOL');
    assert.ok(r, JSON.stringify(d.refusals));
    assert.match(r.message, /helper\.isra\.\d+/);
    assert.match(r.message, /`other`/);
    assert.match(r.hint ?? '', /`other`/);
    assert.equal(fn(d, /^helper\.isra\.\d+$/)?.clone?.breaker, 'other');
  });

  test('clone kinds and the shipped name of a clone numbered otherwise', () => {
    assert.equal(cloneKind('foo.constprop.isra.0'), 'constprop.isra');
    assert.equal(cloneKind('foo.part.3'), 'part');
    assert.equal(cloneKind('foo.cold'), undefined);
    assert.equal(cloneKind('count.3'), undefined);
    assert.equal(
      shippedCloneName('foo.isra.0', ['bar.isra.0', 'foo.isra.2', 'foo.constprop.0']),
      'foo.isra.2',
    );
    assert.equal(shippedCloneName('foo.isra.0', ['foo.isra.1', 'foo.isra.2']), undefined, 'ambiguous');
    assert.equal(shippedCloneName('foo', ['foo.isra.1']), undefined, 'not a clone');
  });
});

/*
 * objdiff on object pairs compiled here with gcc from small C files, with the kernel's code model and
 * ftrace flags (-mcmodel=kernel -pg -mfentry -mrecord-mcount) and one section per function and datum.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readElfFile } from '../elf/index.js';
import { diffObjects, type ObjectDiff } from './objdiff.js';
import { ScratchGcc } from './testing/gcc-pair.js';
import { writeDiffObject } from './write.js';

const gcc = new ScratchGcc('objdiff');
const dir = gcc.dir;
const compile = (source: string, flags?: string[]) => gcc.compile(source, { flags });

async function pair(orig: string, patched: string, flags?: string[]): Promise<ObjectDiff> {
  return diffObjects(compile(orig, flags), compile(patched, flags));
}

const verdict = (d: ObjectDiff, name: string) => d.functions.find((f) => f.name === name);
const codes = (d: ObjectDiff) => d.refusals.map((r) => r.code);
/** the functions the diff object carries (their records say `included`) */
const carried = (d: ObjectDiff) =>
  d.functions
    .filter((f) => f.included)
    .map((f) => f.name)
    .sort();

describe('objdiff', () => {
  test('classifies functions as same, changed (with the reason) and new', async () => {
    const d = await pair(
      'int keep(int x) { return x * 7; }\nint fix(int x) { return x + 1; }\n',
      'int keep(int x) { return x * 7; }\nstatic __attribute__((noinline)) int helper(int x) { return x ^ 0x55; }\nint fix(int x) { return helper(x) + 2; }\n',
    );
    assert.equal(verdict(d, 'keep')?.change, 'same');
    assert.equal(verdict(d, 'fix')?.change, 'changed');
    assert.ok(verdict(d, 'fix')?.reason, 'a changed function says why');
    assert.equal(verdict(d, 'helper')?.change, 'new');
    assert.deepEqual(d.refusals, []);
    assert.deepEqual(carried(d), ['fix', 'helper']);
    const obj = await writeDiffObject(d, join(dir, 'fix-diff.o'));
    const bind = (name: string) => obj.symbols.find((s) => s.name === name)?.bind;
    assert.equal(bind('fix'), 1, 'the replaced function is global: klp_func.new_func names it');
    assert.equal(bind('helper'), 0, 'a new static helper stays private to the diff object');
    assert.equal(
      obj.symbols.find((s) => s.name === 'keep'),
      undefined,
      'unchanged functions are left out',
    );
  });

  test('a string that moved inside its section is not a change; a changed target is', async () => {
    // without section flags all strings share .rodata.str1.1: a longer first string shifts the second
    const src = (first: string) =>
      `extern int printk(const char *, ...);\nint greet(void) { return printk("${first}"); }\nint other(void) { return printk("other"); }\n`;
    const o = compile(src('hi'), []);
    const p = compile(src('hello, world'), []);
    // the premise: the reference from other() really has a different addend in the two objects
    const addends = async (path: string) => {
      const obj = await readElfFile(path);
      const other = obj.symbols.find((s) => s.name === 'other')!;
      const start = Number(other.value);
      return obj
        .relocationsFor(obj.section('.text')!)
        .flatMap((r) => r.relocations!)
        .filter(
          (x) => Number(x.offset) >= start && Number(x.offset) < start + other.size && x.symbol?.name === '',
        )
        .map((x) => x.addend);
    };
    assert.notDeepEqual(await addends(o), await addends(p), 'layout shift expected in the fixture');
    const d = await diffObjects(o, p);
    assert.equal(verdict(d, 'other')?.change, 'same');
    assert.equal(verdict(d, 'greet')?.change, 'changed');
    assert.match(verdict(d, 'greet')?.reason ?? '', /"hi" → string "hello, world"/);

    const swapped = await pair(
      'static int a = 1, b = 2;\nint get(void) { return a++; }\nint other(void) { return b++; }\n',
      'static int a = 1, b = 2;\nint get(void) { return b++; }\nint other(void) { return b++; }\n',
    );
    assert.equal(verdict(swapped, 'get')?.change, 'changed');
    assert.match(verdict(swapped, 'get')?.reason ?? '', /a → b/);
  });

  const ISRA = (k: number, extra = '') =>
    `struct s { int a, b, c[10]; };\nstatic __attribute__((noinline)) int helper(struct s *p) { return p->a * ${k}; }\nint caller(struct s *p) { return helper(p) + 1${extra}; }\n`;

  test('correlates .isra clones by base name, and carries a changed clone its callers prove', async () => {
    const same = await pair(ISRA(3), ISRA(3, ' + p->b'));
    const clone = same.functions.find((f) => f.name.startsWith('helper.'));
    assert.ok(
      clone && /\.isra\.\d+$/.test(clone.name),
      `fixture must produce an .isra clone, got ${same.functions.map((f) => f.name)}`,
    );
    assert.equal(clone.change, 'same');
    assert.equal(verdict(same, 'caller')?.change, 'changed');
    assert.deepEqual(same.refusals, []);

    // its only caller is unchanged, so it calls the new clone as it called the old (clones.test.ts)
    const changed = await pair(ISRA(3), ISRA(5));
    assert.deepEqual(codes(changed), []);
    assert.deepEqual(carried(changed), [clone.name]);
  });

  test('static locals correlate by base name and position, not by their number', async () => {
    const d = await pair(
      'int counter(void) { static int n; return ++n; }\n',
      'int first(void) { static int n; return n += 2; }\nint counter(void) { static int n; return ++n; }\n',
    );
    const names = d.data.map((x) => x.name);
    assert.ok(
      names.some((x) => x !== 'n.0' && x.startsWith('n.')),
      `fixture must renumber the static local: ${names}`,
    );
    assert.equal(verdict(d, 'counter')?.change, 'same');
    assert.equal(verdict(d, 'first')?.change, 'new');
  });

  test('changed data is refused with KLP-DATA-CHANGED', async () => {
    const d = await pair(
      'static int table[4] = { 1, 2, 3, 4 };\nint get(int i) { return table[i]; }\n',
      'static int table[4] = { 1, 2, 3, 5 };\nint get(int i) { return table[i]; }\n',
    );
    assert.deepEqual(codes(d), ['KLP-DATA-CHANGED']);
    assert.match(d.refusals[0]!.message, /table/);
    const grown = await pair(
      'int g[2];\nint get(void) { return g[1]; }\n',
      'int g[3];\nint get(void) { return g[1]; }\n',
    );
    assert.ok(codes(grown).includes('KLP-DATA-CHANGED'));
  });

  test('changed init code is refused with KLP-INIT-CHANGED', async () => {
    const d = await pair(
      '__attribute__((section(".init.text"))) int setup(void) { return 1; }\n',
      '__attribute__((section(".init.text"))) int setup(void) { return 2; }\n',
    );
    assert.ok(codes(d).includes('KLP-INIT-CHANGED'), JSON.stringify(d.refusals));
  });

  test('a changed notrace function is refused with KLP-NOTRACE', async () => {
    const d = await pair(
      '__attribute__((no_instrument_function)) int raw(int x) { return x + 1; }\nint traced(int x) { return x; }\n',
      '__attribute__((no_instrument_function)) int raw(int x) { return x + 2; }\nint traced(int x) { return x; }\n',
    );
    assert.deepEqual(codes(d), ['KLP-NOTRACE']);
    const ok = await pair('int traced(int x) { return x; }\n', 'int traced(int x) { return x + 3; }\n');
    assert.deepEqual(codes(ok), []);
  });

  test('a changed string literal is carried in the diff object with its function', async () => {
    const d = await pair(
      'extern int printk(const char *, ...);\nint show(void) { return printk("VmallocChunk: %d\\n", 0); }\nint keep(void) { return printk("keep\\n"); }\n',
      'extern int printk(const char *, ...);\nint show(void) { return printk("VMALLOCCHUNK: %d\\n", 0); }\nint keep(void) { return printk("keep\\n"); }\n',
    );
    assert.equal(verdict(d, 'show')?.change, 'changed');
    assert.match(verdict(d, 'show')?.reason ?? '', /VmallocChunk.*VMALLOCCHUNK/);
    assert.equal(verdict(d, 'keep')?.change, 'same');
    const out = join(dir, 'show-diff.o');
    await writeDiffObject(d, out);
    const obj = await readElfFile(out);
    const names = obj.sections.map((s) => s.name);
    assert.ok(names.includes('.text.show'));
    assert.ok(!names.includes('.text.keep'), 'unchanged functions are not carried');
    const strings = obj.sections
      .filter((s) => (s.flags & 0x20) !== 0)
      .map((s) => Buffer.from(s.data).toString('latin1'));
    assert.ok(
      strings.some((s) => s.includes('VMALLOCCHUNK')),
      'the new string travels with the function',
    );
    assert.ok(!strings.some((s) => s.includes('keep')));
    const mcount = obj.section('__mcount_loc');
    assert.equal(mcount?.size, 8, 'one __mcount_loc entry: the carried function');
    const sym = obj.symbols.find((s) => s.name === 'printk');
    assert.equal(sym?.shndx, 0, 'printk stays an undefined reference');
    // readelf agrees the object is well formed
    const r = spawnSync('readelf', ['-rW', out], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /\.rela\.text\.show/);
  });

  test('a new object of a kernel table (a new tracepoint) is refused, a new static variable is carried', async () => {
    const table = await pair(
      'int foo(int x) { return x; }\n',
      'struct d { const char *f; int l; };\nint foo(int x) { static struct d __attribute__((section("__tracepoints"))) tp = { "x", 1 }; return x + tp.l; }\n',
    );
    assert.deepEqual(codes(table), ['OBJDIFF-NEW-SPECIAL-OBJECT']);
    const data = await pair(
      'int foo(int x) { return x; }\n',
      'int foo(int x) { static int calls; calls++; return x + calls; }\n',
    );
    assert.deepEqual(codes(data), []);
    assert.ok(data.data.some((v) => v.change === 'new' && v.name.startsWith('calls')));
    assert.ok(
      [...data.selection.sections].some((sec) => sec.name.startsWith('.bss.calls')),
      'the new variable is carried',
    );
  });

  test('a new global variable is carried and defined in the diff object; one the kernel already has is refused', async () => {
    const orig = 'int foo(int x) { return x; }\n';
    const patched = 'long hits = 41;\nint foo(int x) { hits++; return x + (int)hits; }\n';
    const d = await pair(orig, patched);
    assert.deepEqual(codes(d), []);
    const hits = d.data.find((v) => v.name === 'hits');
    assert.equal(hits?.change, 'new');
    assert.equal(hits?.included, true, 'the new global is carried');
    assert.equal(d.references.has(hits!.symbol), false, 'no reference to the running kernel for it');
    const obj = await writeDiffObject(d, join(dir, 'global-diff.o'));
    const sym = obj.symbols.find((s) => s.name === 'hits');
    assert.equal(sym?.bind, 1, 'defined global in the diff object');
    assert.equal(sym?.section?.name, '.data.hits');
    assert.deepEqual([...(sym?.section?.data ?? [])], [41, 0, 0, 0, 0, 0, 0, 0], 'with its initializer');
    const rels = obj.relocationsFor(obj.section('.text.foo')!).flatMap((r) => r.relocations!);
    assert.ok(
      rels.some((r) => r.symbol === sym || r.symbol?.section === sym?.section),
      'the carried function references the carried copy',
    );
    // the running kernel's object already defines a global of that name: two copies of one state
    const known = await diffObjects(compile(orig), compile(patched), { kernelGlobal: (n) => n === 'hits' });
    assert.deepEqual(codes(known), ['KLP-DATA-NEW-GLOBAL']);
    assert.match(known.refusals[0]!.message, /`hits`/);
    const other = await diffObjects(compile(orig), compile(patched), { kernelGlobal: (n) => n === 'other' });
    assert.deepEqual(codes(other), []);
  });

  test('special tables keep the entries of carried functions only; an unknown table is refused', async () => {
    const entry = (table: string) =>
      `asm volatile("1: nop\\n.pushsection ${table},\\"a\\"\\n.balign 4\\n.long 1b - .\\n.long 1b - .\\n.long 0\\n.popsection");`;
    const src = (k: number, table = '__ex_table') =>
      `int f1(int x) { ${entry(table)} return x + ${k}; }\nint f2(int x) { ${entry(table)} return x * 3; }\n`;
    const d = await pair(src(1), src(2));
    assert.deepEqual(codes(d), []);
    const ex = [...d.selection.tables].find(([s]) => s.name === '__ex_table');
    assert.deepEqual(ex?.[1], [0], 'only the entry of f1 (the first, at offset 0) is kept');
    const obj = await writeDiffObject(d, join(dir, 'ex-diff.o'));
    assert.equal(obj.section('__ex_table')?.size, 12);
    const rels = obj.relocationsFor(obj.section('__ex_table')!).flatMap((r) => r.relocations!);
    assert.equal(rels.length, 2);
    assert.ok(
      rels.every((r) => r.symbol?.section?.name === '.text.f1'),
      'both fields point into the carried copy of f1',
    );

    const unknown = await pair(src(1, '.mystery_table'), src(2, '.mystery_table'));
    assert.deepEqual(codes(unknown), ['KLP-SPECIAL-SECTION']);
    assert.match(unknown.refusals[0]!.message, /\.mystery_table.*f1/);

    // a pointer to the function's entry in named data (like a sched_class in `__dl_sched_class`) is no
    // table entry: the kernel's copy calls the old function, which ftrace redirects
    const ops = (k: number) =>
      `struct ops { int (*fn)(int); };
static int f1(int x) { return x + ${k}; }
` +
      `const struct ops my_ops __attribute__((section("__my_ops"), used)) = { .fn = f1 };
`;
    const pointer = await pair(ops(1), ops(2));
    assert.deepEqual(codes(pointer), []);
    assert.deepEqual(
      pointer.functions.filter((f) => f.change === 'changed').map((f) => f.name),
      ['f1'],
    );
  });

  test('a .cold part travels with its changed function', async () => {
    const src = (k: number) =>
      `extern void slow(int) __attribute__((cold));\nint foo(int x) { if (x > 100) { slow(x); slow(x + 1); return -1; } return x * ${k}; }\n`;
    const d = await pair(src(2), src(3));
    assert.ok(
      d.functions.some((f) => f.name === 'foo.cold'),
      'fixture must split off foo.cold',
    );
    assert.equal(verdict(d, 'foo')?.change, 'changed');
    assert.deepEqual(carried(d), ['foo', 'foo.cold']);
    const obj = await writeDiffObject(d, join(dir, 'cold-diff.o'));
    const cold = obj.symbols.find((s) => s.name === 'foo.cold');
    assert.ok(cold?.section, 'foo.cold is carried, never a reference to the old copy');
    assert.equal(cold.bind, 0);
  });

  test('references to unchanged local functions become references to the running kernel', async () => {
    const src = (k: number) =>
      `static __attribute__((noinline)) int helper(int x) { return x * 3 + 1; }\nint user(int x) { return helper(x) + ${k}; }\n`;
    const d = await pair(src(1), src(2));
    assert.equal(verdict(d, 'helper')?.change, 'same');
    assert.equal(verdict(d, 'user')?.change, 'changed');
    const ext = [...d.references.values()].find((e) => e.name === 'helper');
    assert.ok(ext?.local, 'helper is a local of the original object: a klp relocation later');
    const out = join(dir, 'helper-diff.o');
    const obj = await writeDiffObject(d, out);
    const h = obj.symbols.find((s) => s.name === 'helper');
    assert.equal(h?.section, null, 'helper is not carried');
  });
});

describe('the diff model', () => {
  test('one record per symbol: its twin, its change, whether it is carried, how it is referenced', async () => {
    const src = (k: number) =>
      `static __attribute__((noinline)) int helper(int x) { return x * 3 + 1; }\nint user(int x) { return helper(x) + ${k}; }\n`;
    const d = await pair(src(1), src(2));
    const user = verdict(d, 'user')!;
    const helper = verdict(d, 'helper')!;
    assert.equal(user.twin?.name, 'user', 'a changed function has its original twin');
    assert.ok(user.twin !== user.symbol && d.original.symbols.includes(user.twin!));
    assert.deepEqual([user.change, user.included, user.reference], ['changed', true, undefined]);
    assert.deepEqual([helper.change, helper.included], ['same', false]);
    // the unchanged helper is reached through the running kernel: its reference is on its record,
    // the very object the diff's reference table holds for that symbol
    assert.ok(helper.reference?.local);
    assert.equal(d.references.get(helper.symbol), helper.reference);
    // facts for the rules are the diff itself: no second table of functions
    assert.equal(d.functions.filter((f) => f === user).length, 1);
  });
});

describe('suture objdiff', () => {
  const cli = join(process.cwd(), 'bin', 'suture.js');
  test('exits 1 with the rule id on a refusal, 0 with JSON otherwise', async () => {
    const o = compile('int v = 1;\nint get(void) { return v; }\n');
    const p = compile('int v = 2;\nint get(void) { return v; }\n');
    const bad = spawnSync(process.execPath, [cli, 'objdiff', o, p], { encoding: 'utf8' });
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /error\[KLP-DATA-CHANGED\]/);

    const p2 = compile('int v = 1;\nint get(void) { return v + 1; }\n');
    const out = join(dir, 'cli-diff.o');
    const good = spawnSync(process.execPath, [cli, 'objdiff', o, p2, '-o', out, '--json'], {
      encoding: 'utf8',
    });
    assert.equal(good.status, 0, good.stderr);
    const json = JSON.parse(good.stdout) as { functions: { name: string; change: string }[]; output: string };
    assert.deepEqual(
      json.functions.map((f) => [f.name, f.change]),
      [['get', 'changed']],
    );
    assert.equal(json.output, out);
    assert.equal(spawnSync('readelf', ['-hW', out]).status, 0);
  });
});

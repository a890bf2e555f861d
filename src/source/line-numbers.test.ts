import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readElf } from '../elf/index.js';
import { lineDirectives, withLineDirectives } from './line-numbers.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-lines-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The line number the compiler assigns to each line of `text`, following `#line` directives. */
function effectiveNumbers(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let n = 1;
  for (const line of text.split('\n')) {
    const m = /^#line (\d+)/.exec(line);
    if (m) {
      n = Number(m[1]);
      continue;
    }
    out.set(line, n);
    n++;
  }
  return out;
}

test('every unchanged line keeps its original number after insertions, deletions and changes', () => {
  const original = Array.from({ length: 30 }, (_, i) => `line${i + 1};`);
  const patched = [...original];
  patched.splice(25, 1); // delete line26
  patched.splice(12, 1, 'changed13a;', 'changed13b;', 'changed13c;'); // 1 → 3 lines
  patched.splice(2, 0, 'new1;', 'new2;'); // insert after line2
  const text = withLineDirectives(original.join('\n'), patched.join('\n'), 'fs/x.c');
  const nums = effectiveNumbers(text);
  for (const [i, l] of original.entries()) {
    if (nums.has(l)) assert.equal(nums.get(l), i + 1, `${l} keeps its number`);
  }
  assert.ok(text.startsWith('#line 1 "fs/x.c"\n'));
});

test('no directive inside a backslash-continued macro or a comment: it moves down to a safe line', () => {
  const original = ['#define M(x) \\', '\tdo { x; } while (0)', 'int a;', '/* one', 'two */', 'int b;'].join(
    '\n',
  );
  const patched = [
    '#define M(x) \\',
    '\tfoo(); \\',
    '\tdo { x; } while (0)',
    'int a;',
    '/* one',
    'two */',
    'int b;',
  ].join('\n');
  const d = lineDirectives(original, patched);
  // the inserted line is inside the macro: the first safe place is after `do { x; } while (0)`
  assert.deepEqual(d, [{ beforeLine: 3, originalLine: 3 }]);
  const c1 = ['int a;', '/* one', 'two', '*/', 'int b;'].join('\n');
  const c2 = ['int a;', '/* one', 'added', 'two', '*/', 'int b;'].join('\n');
  assert.deepEqual(lineDirectives(c1, c2), [{ beforeLine: 5, originalLine: 5 }]);
});

const SOURCE = `extern void report(int line);
#define WARN_ON(c) do { if (c) report(__LINE__); } while (0)

int changed(int x)
{
	return x + 1;
}

int below(int x)
{
	WARN_ON(x > 3);
	return x * 2;
}
`;
// the fix adds lines above `below`, which itself does not change
const PATCHED = SOURCE.replace(
  '\treturn x + 1;\n',
  '\tif (x < 0)\n\t\treturn 0;\n\t/* clamp */\n\treturn x + 1;\n',
);

function compile(name: string, text: string): Uint8Array {
  const src = join(dir, `${name}.c`);
  const obj = join(dir, `${name}.o`);
  writeFileSync(src, text);
  execFileSync('gcc', ['-O2', '-ffunction-sections', '-c', '-o', obj, src]);
  return readFileSync(obj);
}

function sectionBytes(obj: Uint8Array, name: string): Buffer {
  const s = readElf(obj).section(name);
  assert.ok(s, `${name} exists`);
  return Buffer.from(s.data);
}

test("WARN_ON's __LINE__ in an unchanged function below a hunk stays the same only with #line", () => {
  const original = compile('orig', SOURCE);
  const without = compile('without', PATCHED);
  const withDirectives = compile('with', withLineDirectives(SOURCE, PATCHED, 'x.c'));
  const o = sectionBytes(original, '.text.below');
  // the constant passed to report() is the line number: 11 in the original, 14 after the hunk
  assert.ok(o.includes(Buffer.from([11, 0, 0, 0])), 'original passes line 11');
  assert.notDeepEqual(
    sectionBytes(without, '.text.below'),
    o,
    'without #line the unchanged function differs',
  );
  assert.deepEqual(sectionBytes(withDirectives, '.text.below'), o, 'with #line it is byte-identical');
  assert.notDeepEqual(sectionBytes(withDirectives, '.text.changed'), sectionBytes(original, '.text.changed'));
});

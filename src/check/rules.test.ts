/*
 * The rule book is the only home of a refusal: every rule id is written in check/ and nowhere else in
 * the product (tests may name the ids they expect), and check/README.md lists every rule.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { ALL_RULES, MODULE_RULES, OBJECT_RULES, SOURCE_RULES } from './rules.js';

const SRC = join(process.cwd(), 'src');

function productFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...productFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

test('the book has source, object and module rules, each id once', () => {
  assert.ok(SOURCE_RULES.length > 0 && OBJECT_RULES.length > 0 && MODULE_RULES.length > 0);
  const ids = ALL_RULES.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate rule ids: ${ids.join(', ')}`);
  for (const r of ALL_RULES) assert.match(r.id, /^[A-Z]+(-[A-Z]+)+$/, r.id);
});

test('no product file outside check/ spells a rule id', () => {
  const outside = productFiles(SRC).filter((f) => !relative(SRC, f).startsWith('check/'));
  assert.ok(outside.length > 50, `found only ${outside.length} product files under ${SRC}`);
  const offenders: string[] = [];
  for (const file of outside) {
    // code only: comments may name a rule (diagnostic.ts shows one as an example)
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const { id } of ALL_RULES) {
      if (new RegExp(`['"\`]${id}['"\`]`).test(text)) offenders.push(`${relative(SRC, file)}: ${id}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('check/README.md lists every rule', () => {
  const readme = readFileSync(join(SRC, 'check', 'README.md'), 'utf8');
  const missing = ALL_RULES.filter((r) => !readme.includes(`\`${r.id}\``)).map((r) => r.id);
  assert.deepEqual(missing, []);
});

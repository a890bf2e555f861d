/*
 * Every rule Suture can emit has its long text (explain.ts): each rule of the book, and every rule id
 * spelled anywhere in check/'s code (a code a rule file raises but forgot to list in rules.ts still
 * needs one); each text names a rule of the book and has its three sections.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadRuleTexts, parseRuleText, ruleText, SECTIONS } from './explain.js';
import { ALL_RULES } from './rules.js';

const CHECK = join(process.cwd(), 'src', 'check');
const texts = loadRuleTexts(CHECK);

/** Rule-id-like string literals in check/'s product files (comments removed). */
function codesInCheck(dir: string): Set<string> {
  const out = new Set<string>();
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      for (const c of codesInCheck(p)) out.add(c);
      continue;
    }
    if (!name.endsWith('.ts') || name.endsWith('.test.ts') || name === 'explain.ts') continue;
    const code = readFileSync(p, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const m of code.matchAll(/['"`]([A-Z]{3,}(?:-[A-Z]+)+)['"`]/g)) out.add(m[1]!);
  }
  return out;
}

test('every rule of the book has a text, with its three sections and a diff that triggers it', () => {
  const missing = ALL_RULES.map((r) => r.id).filter((id) => !texts.has(id));
  assert.deepEqual(missing, [], 'rules without a text next to them');
  for (const t of texts.values()) {
    for (const s of SECTIONS) assert.ok(t.sections[s].length > 80, `${t.id}: "${s}" says something`);
    assert.match(t.sections['A patch that triggers it'], /```diff\n[\s\S]*\n@@ [\s\S]*```/, t.id);
    assert.match(t.severity, /^(error|warning|error or warning)$/, t.id);
  }
});

test('every rule id check/ can raise has a text, and every text is of a rule of the book', () => {
  const raised = [...codesInCheck(CHECK)].sort();
  assert.ok(raised.includes('KLP-DATA-CHANGED') && raised.includes('DIFF-FUZZ'), raised.join(', '));
  assert.deepEqual(
    raised.filter((id) => !texts.has(id)),
    [],
    'codes raised in check/ without a text',
  );
  const book = new Set(ALL_RULES.map((r) => r.id));
  assert.deepEqual(
    [...texts.keys()].filter((id) => !book.has(id)),
    [],
    'texts of no rule',
  );
});

test('a warning rule says so; lookup ignores case; an unknown id lists the known ones', () => {
  assert.equal(texts.get('KLP-INLINE-SPREAD')?.severity, 'warning');
  assert.equal(ruleText('klp-data-changed', texts).id, 'KLP-DATA-CHANGED');
  assert.throws(
    () => ruleText('KLP-NOPE', texts),
    (e: Error & { code?: string; diagnostic?: { detail?: string[] } }) => {
      assert.equal(e.code, 'EXPLAIN-UNKNOWN-RULE');
      const known = (e.diagnostic?.detail ?? []).join(' ');
      for (const r of ALL_RULES) assert.ok(known.includes(r.id), `${r.id} is listed`);
      return true;
    },
  );
});

test('a text without its sections is refused with the file named', () => {
  assert.throws(
    () => parseRuleText('# KLP-X-Y\n\nSeverity: error\n\n## What it protects against\n\nx\n', 'object/x.md'),
    /object\/x\.md: no `## A patch that triggers it` section/,
  );
  assert.throws(() => parseRuleText('no heading\n', 'a.md'), /no `# RULE-ID` first line/);
});

test('a directory without texts is EXPLAIN-NO-TEXTS, not an empty book', () => {
  assert.throws(() => loadRuleTexts(join(CHECK, 'object')), /EXPLAIN-NO-TEXTS/);
});

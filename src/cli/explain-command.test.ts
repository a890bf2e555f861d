/*
 * `suture explain` through the CLI: a rule's long text, the list of every rule with its one line, an
 * unknown id listing the known ones (exit 1); and every text's example is a diff Suture can parse.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { loadRuleTexts } from '../check/explain.js';
import { ALL_RULES } from '../check/rules.js';
import { parseDiff } from '../source/diff.js';

const BIN = resolve(process.cwd(), 'bin', 'suture.js');
const suture = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

test('suture explain RULE prints the three sections of its text', () => {
  const r = suture('explain', 'KLP-DATA-CHANGED');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^# KLP-DATA-CHANGED\n/);
  assert.match(
    r.stdout,
    /## What it protects against\n[\s\S]*## A patch that triggers it\n[\s\S]*## How to rewrite the patch\n/,
  );
  assert.match(r.stdout, /klp_shadow_get_or_alloc/);
});

test('suture explain lists every rule with its severity and one line', () => {
  const r = suture('explain');
  assert.equal(r.status, 0, r.stderr);
  for (const rule of ALL_RULES) {
    assert.match(r.stdout, new RegExp(`^${rule.id} +(error|warning|error or warning) +\\S`, 'm'), rule.id);
    assert.ok(r.stdout.includes(rule.title), `${rule.id}'s title`);
  }
});

test('suture explain UNKNOWN fails and lists the known rule ids', () => {
  const r = suture('explain', 'KLP-NO-SUCH-RULE');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /EXPLAIN-UNKNOWN-RULE/);
  for (const rule of ALL_RULES) assert.ok(r.stderr.includes(rule.id), `${rule.id} is listed`);
});

test("every text's triggering patch is a well-formed unified diff", () => {
  for (const t of loadRuleTexts().values()) {
    const diff = /```diff\n([\s\S]*?)```/.exec(t.sections['A patch that triggers it'])?.[1];
    assert.ok(diff, `${t.id} has a diff block`);
    const parsed = parseDiff(diff, t.file);
    assert.ok(parsed.files.length > 0, t.id);
  }
});

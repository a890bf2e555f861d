import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { applyDiff, parseDiff } from './diff.js';

const root = mkdtempSync(join(tmpdir(), 'suture-diff-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

const tree = join(root, 'tree');
mkdirSync(join(tree, 'fs/proc'), { recursive: true });
const ORIGINAL = ['int a;', 'static int show(void)', '{', '\treturn 1;', '}', 'int b;', ''].join('\n');
writeFileSync(join(tree, 'fs/proc/x.c'), ORIGINAL);
writeFileSync(join(tree, 'fs/proc/y.c'), 'int y;\n');

const GIT_DIFF = `From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] proc: return 2

---
 fs/proc/x.c | 2 +-
 1 file changed

diff --git a/fs/proc/x.c b/fs/proc/x.c
index 1111111..2222222 100644
--- a/fs/proc/x.c
+++ b/fs/proc/x.c
@@ -2,5 +2,6 @@ int a;
 static int show(void)
 {
-\treturn 1;
+\t/* two now */
+\treturn 2;
 }
 int b;
diff --git a/fs/proc/y.c b/fs/proc/y.c
--- a/fs/proc/y.c
+++ b/fs/proc/y.c
@@ -1 +1 @@
-int y;
+int y = 1;
--
2.39.0
`;

test('parses a git format-patch with mail headers, prefixes, two files and a one-line hunk', () => {
  const d = parseDiff(GIT_DIFF, 'fix.patch', tree);
  assert.deepEqual(
    d.files.map((f) => [f.path, f.kind, f.hunks.length]),
    [
      ['fs/proc/x.c', 'modify', 1],
      ['fs/proc/y.c', 'modify', 1],
    ],
  );
  const h = d.files[0]!.hunks[0]!;
  assert.deepEqual([h.oldStart, h.oldLines, h.newStart, h.newLines, h.section], [2, 5, 2, 6, 'int a;']);
  assert.equal(d.files[1]!.hunks[0]!.oldLines, 1);
});

test('parses a plain diff -ru with a top directory and strips it using the tree', () => {
  const plain = `--- linux-6.1.orig/fs/proc/y.c\t2024-01-01
+++ linux-6.1/fs/proc/y.c\t2024-01-02
@@ -1 +1 @@
-int y;
+int y = 2;
`;
  const d = parseDiff(plain, 'plain.diff', tree);
  assert.equal(d.files[0]!.path, 'fs/proc/y.c');
});

test('applies to copies under the overlay and never touches the tree', () => {
  const overlay = join(root, 'overlay1');
  const applied = applyDiff(parseDiff(GIT_DIFF, 'fix.patch', tree), tree, overlay);
  assert.equal(applied.length, 2);
  assert.match(readFileSync(join(overlay, 'fs/proc/x.c'), 'utf8'), /return 2;/);
  assert.equal(readFileSync(join(overlay, 'fs/proc/y.c'), 'utf8'), 'int y = 1;\n');
  assert.equal(readFileSync(join(tree, 'fs/proc/x.c'), 'utf8'), ORIGINAL);
  assert.equal(applied[0]!.original, join(tree, 'fs/proc/x.c'));
});

test('a hunk with an offset applies and the offset is reported', () => {
  const shifted = GIT_DIFF.replace('@@ -2,5 +2,6 @@', '@@ -5,5 +5,6 @@');
  const applied = applyDiff(parseDiff(shifted, 'fix.patch', tree), tree, join(root, 'overlay2'));
  assert.match(applied[0]!.notes.join(' '), /offset -3 lines/);
});

test('a hunk that does not apply is DIFF-HUNK-FAILED showing the hunk and the file', () => {
  const bad = GIT_DIFF.replace('-\treturn 1;', '-\treturn 7;');
  assert.throws(
    () => applyDiff(parseDiff(bad, 'fix.patch', tree), tree, join(root, 'overlay3')),
    (e: unknown) => {
      assert.ok(isSutureError(e));
      assert.equal(e.code, 'DIFF-HUNK-FAILED');
      assert.match(e.diagnostic.message, /hunk #1 of `fs\/proc\/x\.c`/);
      assert.equal(e.diagnostic.location?.file, 'fs/proc/x.c');
      const detail = (e.diagnostic.detail ?? []).join('\n');
      assert.match(detail, /@@ -2,5 \+2,6 @@/);
      assert.match(detail, /-\treturn 7;/);
      assert.match(detail, /\+\treturn 2;/);
      return true;
    },
  );
});

test('a file missing from the tree is DIFF-FILE-MISSING; garbage is DIFF-EMPTY; a short hunk is DIFF-MALFORMED', () => {
  const missing = GIT_DIFF.replaceAll('fs/proc/y.c', 'fs/proc/nope.c');
  assert.throws(
    () => applyDiff(parseDiff(missing, 'fix.patch', tree), tree, join(root, 'overlay4')),
    /DIFF-FILE-MISSING/,
  );
  assert.throws(() => parseDiff('hello\nworld\n', 'x'), /DIFF-EMPTY/);
  const truncated = GIT_DIFF.split('\n').slice(0, 17).join('\n');
  assert.throws(() => parseDiff(truncated, 'x', tree), /DIFF-MALFORMED/);
  assert.throws(
    () => parseDiff('--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n', 'x'),
    /DIFF-MALFORMED/,
  );
});

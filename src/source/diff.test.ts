import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isRefusal } from '../check/refusal.js';
import { isSutureError } from '../diagnostic.js';
import { applyDiff, checkFuzz, parseDiff } from './diff.js';

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

test('a hunk with an offset applies, the offset is a DIFF-OFFSET warning and the hunk moves', () => {
  const shifted = GIT_DIFF.replace('@@ -2,5 +2,6 @@', '@@ -5,5 +5,6 @@');
  const applied = applyDiff(parseDiff(shifted, 'fix.patch', tree), tree, join(root, 'overlay2'));
  assert.match(applied[0]!.notes.join(' '), /offset -3 lines/);
  assert.match(readFileSync(join(root, 'overlay2', 'fs/proc/x.c'), 'utf8'), /return 2;/);
  const [w] = applied[0]!.warnings ?? [];
  assert.equal(w?.code, 'DIFF-OFFSET');
  assert.equal(w?.severity, 'warning');
  assert.match(w!.message, /hunk #1 of `fs\/proc\/x\.c` applied at line 2 \(offset -3 lines\)/);
  assert.deepEqual(w?.location, { file: 'fs/proc/x.c', line: 2 });
  assert.equal(applied[0]!.hunks![0]!.oldStart, 2, 'the landed hunk starts where patch put it');
  assert.deepEqual(applied[1]!.warnings, [], 'an exact hunk has no warning');
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

// ---- fuzz, strip levels, added and deleted files (real GNU patch) ----

/** a longer file, so that a hunk has three context lines on each side */
const LONG = `${Array.from({ length: 30 }, (_, i) => `int v${i + 1} = ${i + 1};`).join('\n')}\n`;
writeFileSync(join(tree, 'fs/proc/long.c'), LONG);
const FUZZY = `--- a/fs/proc/long.c
+++ b/fs/proc/long.c
@@ -9,7 +9,7 @@
 int v9 = 9;
 int v10 = 10;
 int v11 = 11;
-int v12 = 12;
+int v12 = 120;
 int v13 = 13;
 int v14 = 14;
 int v15 = 15;
`;
/** the same change with its first context line not in the tree: patch needs fuzz 1 */
const FUZZ1 = FUZZY.replace(' int v9 = 9;', ' int v9 = 99;');

test('a hunk that needs fuzz is refused with the line it would land on and the hint --fuzz N', () => {
  assert.throws(
    () => applyDiff(parseDiff(FUZZ1, 'fuzz.patch', tree), tree, join(root, 'overlay5')),
    (e: unknown) => {
      assert.ok(isRefusal(e));
      assert.equal(e.code, 'DIFF-FUZZ');
      assert.match(
        e.diagnostic.message,
        /hunk #1 of `fs\/proc\/long\.c` applies only with fuzz 1: it would land at line 9/,
      );
      assert.match(e.diagnostic.hint ?? '', /--fuzz 1/);
      assert.match((e.diagnostic.detail ?? []).join('\n'), /\+int v12 = 120;/);
      return true;
    },
  );
  assert.equal(readFileSync(join(tree, 'fs/proc/long.c'), 'utf8'), LONG);
});

test('with --fuzz 1 the hunk applies as patch --fuzz 1 does, with a DIFF-FUZZ warning', () => {
  const applied = applyDiff(parseDiff(FUZZ1, 'fuzz.patch', tree), tree, join(root, 'overlay6'), { fuzz: 1 });
  assert.match(readFileSync(join(root, 'overlay6', 'fs/proc/long.c'), 'utf8'), /int v12 = 120;/);
  const [w] = applied[0]!.warnings ?? [];
  assert.equal(w?.code, 'DIFF-FUZZ');
  assert.equal(w?.severity, 'warning');
  assert.match(w!.message, /hunk #1 of `fs\/proc\/long\.c` applied with fuzz 1 at line 9/);
  // fuzz 2 needed: two mismatching context lines at the top are still refused with --fuzz 1
  const fuzz2 = FUZZ1.replace(' int v10 = 10;', ' int v10 = 100;');
  assert.throws(
    () => applyDiff(parseDiff(fuzz2, 'fuzz.patch', tree), tree, join(root, 'overlay7'), { fuzz: 1 }),
    (e: unknown) =>
      isRefusal(e) && /fuzz 2/.test(e.diagnostic.message) && /--fuzz 2/.test(e.diagnostic.hint ?? ''),
  );
});

test('fuzz beyond 3 is DIFF-BAD-FUZZ; a hunk no fuzz can place is still DIFF-HUNK-FAILED', () => {
  assert.throws(() => checkFuzz(4), /DIFF-BAD-FUZZ/);
  assert.throws(() => checkFuzz(1.5), /DIFF-BAD-FUZZ/);
  assert.equal(checkFuzz(undefined), 0);
  const removedMissing = FUZZY.replace('-int v12 = 12;', '-int v12 = 7;');
  assert.throws(
    () => applyDiff(parseDiff(removedMissing, 'x.patch', tree), tree, join(root, 'overlay8'), { fuzz: 3 }),
    /DIFF-HUNK-FAILED/,
  );
});

test('the strip level is detected: p0, p1 (git, or a top directory) and deeper', () => {
  const body = FUZZY.split('\n').slice(2).join('\n');
  const at = (old: string, neu: string) => parseDiff(`--- ${old}\n+++ ${neu}\n${body}`, 'x', tree);
  const p0 = at('fs/proc/long.c', 'fs/proc/long.c');
  assert.deepEqual([p0.strip, p0.files[0]!.path], [0, 'fs/proc/long.c']);
  assert.deepEqual(
    [parseDiff(FUZZY, 'x', tree).strip, parseDiff(FUZZY, 'x', tree).files[0]!.path],
    [1, 'fs/proc/long.c'],
  );
  const top = at('linux-6.1.187/fs/proc/long.c', 'linux-6.1.187/fs/proc/long.c');
  assert.deepEqual([top.strip, top.files[0]!.path], [1, 'fs/proc/long.c']);
  const deep = at(
    'home/me/src/linux-6.1.187.orig/fs/proc/long.c',
    'home/me/src/linux-6.1.187/fs/proc/long.c',
  );
  assert.deepEqual([deep.strip, deep.files[0]!.path], [4, 'fs/proc/long.c']);
  const abs = at('/home/me/linux/fs/proc/long.c', '/home/me/linux/fs/proc/long.c');
  assert.deepEqual([abs.strip, abs.files[0]!.path], [4, 'fs/proc/long.c']);
  // and it applies
  const applied = applyDiff(deep, tree, join(root, 'overlay9'));
  assert.match(readFileSync(applied[0]!.patched!, 'utf8'), /int v12 = 120;/);
});

test('a file the diff creates is written to the overlay; a deleted one is left out of it', () => {
  const diff = `diff --git a/fs/proc/new.h b/fs/proc/new.h
new file mode 100644
--- /dev/null
+++ b/fs/proc/new.h
@@ -0,0 +1,2 @@
+/* new */
+#define NEW_THING 1
diff --git a/fs/proc/y.c b/fs/proc/y.c
deleted file mode 100644
--- a/fs/proc/y.c
+++ /dev/null
@@ -1 +0,0 @@
-int y;
`;
  const d = parseDiff(diff, 'x', tree);
  assert.equal(d.strip, 1);
  assert.deepEqual(
    d.files.map((f) => [f.path, f.kind]),
    [
      ['fs/proc/new.h', 'add'],
      ['fs/proc/y.c', 'delete'],
    ],
  );
  const overlay = join(root, 'overlay10');
  const [added, deleted] = applyDiff(d, tree, overlay);
  assert.equal(readFileSync(added!.patched!, 'utf8'), '/* new */\n#define NEW_THING 1\n');
  assert.equal(added!.original, undefined);
  assert.equal(deleted!.patched, undefined);
  assert.equal(existsSync(join(overlay, 'fs/proc/y.c')), false, 'no empty copy shadows the tree');
  assert.equal(readFileSync(join(tree, 'fs/proc/y.c'), 'utf8'), 'int y;\n');
});

test('several fuzzy hunks: one refusal naming each, with the fuzz the worst needs', () => {
  const second = `@@ -20,7 +20,7 @@
 int v20 = 200;
 int v21 = 210;
 int v22 = 22;
-int v23 = 23;
+int v23 = 230;
 int v24 = 24;
 int v25 = 25;
 int v26 = 26;
`;
  assert.throws(
    () => applyDiff(parseDiff(FUZZ1 + second, 'fuzz.patch', tree), tree, join(root, 'overlay11')),
    (e: unknown) => {
      assert.ok(isRefusal(e));
      assert.match(e.diagnostic.message, /hunk #1 .* fuzz 1: it would land at line 9/);
      assert.match((e.diagnostic.detail ?? []).join('\n'), /also hunk #2: fuzz 2, would land at line 20/);
      assert.match(e.diagnostic.hint ?? '', /--fuzz 2/);
      return true;
    },
  );
});

test('a change the tree already has is DIFF-ALREADY-APPLIED, not a failed hunk', () => {
  const overlay = join(root, 'overlay12');
  const [once] = applyDiff(parseDiff(FUZZY, 'fix.patch', tree), tree, overlay);
  const fixedTree = join(root, 'fixed-tree');
  mkdirSync(join(fixedTree, 'fs/proc'), { recursive: true });
  writeFileSync(join(fixedTree, 'fs/proc/long.c'), readFileSync(once!.patched!, 'utf8'));
  assert.throws(
    () => applyDiff(parseDiff(FUZZY, 'fix.patch', fixedTree), fixedTree, join(root, 'overlay13')),
    (e: unknown) =>
      isSutureError(e) && e.code === 'DIFF-ALREADY-APPLIED' && /already has the change/.test(e.message),
  );
});

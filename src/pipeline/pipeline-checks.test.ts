/*
 * The diff- and prototype-based refusals through the whole front half on the real target kernel (no VM):
 * a changed return type of a global function (KLP-SIGNATURE-CHANGED, from gcc's -aux-info next to each
 * object), and a field added to a struct of a .c file (KLP-STRUCT-CHANGED). Also: -aux-info leaves a real
 * kernel unit byte for byte the same outside its debug sections (gcc records the switch in DW_AT_producer).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { compileObject, compilerArgv, kbuildRecipe, prototypesPath } from '../source/compile.js';
import { BuildRefused, buildLivepatch } from './pipeline.js';
import { fileDiff } from './testing/file-diff.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-pipeline-checks-test-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A diff of several tree files, each edited as text. */
function makePatch(name: string, edits: Record<string, (text: string) => string>): string {
  const parts = Object.entries(edits).map(([file, edit]) => {
    const text = readFileSync(join(target.sourceTree, file), 'utf8');
    const changed = edit(text);
    assert.notEqual(changed, text, `the edit of ${file} applies`);
    return fileDiff(file, text, changed);
  });
  const p = join(dir, `${name}.patch`);
  writeFileSync(p, parts.join(''));
  return p;
}

async function refusalsOf(patch: string): Promise<BuildRefused> {
  try {
    await buildLivepatch({ diffPath: patch, release: target.release, target, stopAfter: 'objdiff' });
  } catch (e) {
    if (e instanceof BuildRefused) return e;
    throw e;
  }
  assert.fail('the build was not refused');
}

test('-aux-info writes the prototypes next to the object and does not change the object code', async () => {
  const recipe = kbuildRecipe(target.sourceTree, 'fs/proc/meminfo.o');
  const withAux = await compileObject({
    tree: target.sourceTree,
    recipe,
    outObject: join(dir, 'aux', 'meminfo.o'),
  });
  assert.ok(existsSync(prototypesPath(withAux.object)));
  assert.match(
    readFileSync(withAux.prototypes, 'utf8'),
    /static int meminfo_proc_show \(struct seq_file \*m, void \*v\)/,
  );
  // the same command without -aux-info (and without objtool, on both sides: it runs after gcc)
  const plain = join(dir, 'plain', 'meminfo.o');
  execFileSync('mkdir', ['-p', join(dir, 'plain')]);
  const argv = compilerArgv({ tree: target.sourceTree, recipe, outObject: plain });
  execFileSync(argv[0]!, argv.slice(1), { cwd: target.sourceTree });
  const aux2 = join(dir, 'aux2', 'meminfo.o');
  execFileSync('mkdir', ['-p', join(dir, 'aux2')]);
  const argv2 = compilerArgv({ tree: target.sourceTree, recipe, outObject: aux2 });
  execFileSync(argv2[0]!, [...argv2.slice(1, -1), '-aux-info', `${aux2}.aux`, argv2.at(-1)!], {
    cwd: target.sourceTree,
  });
  // gcc records its switches in DW_AT_producer (.debug_str): everything but the debug info is identical
  for (const o of [plain, aux2]) execFileSync('objcopy', ['--strip-debug', o, `${o}.nodebug`]);
  assert.ok(
    readFileSync(`${plain}.nodebug`).equals(readFileSync(`${aux2}.nodebug`)),
    'objects with and without -aux-info are identical outside the debug sections',
  );
});

test('a global function whose return type changes (header and definition) is refused as KLP-SIGNATURE-CHANGED', async () => {
  const patch = makePatch('page-reporting-signature', {
    'mm/page_reporting.h': (t) =>
      t.replace('void __page_reporting_notify(void);', 'bool __page_reporting_notify(void);'),
    'mm/page_reporting.c': (t) =>
      t
        .replace('void __page_reporting_notify(void)\n{', 'bool __page_reporting_notify(void)\n{')
        .replace(
          '\tif (likely(prdev))\n\t\t__page_reporting_request(prdev);\n\n\trcu_read_unlock();\n}',
          '\tif (likely(prdev))\n\t\t__page_reporting_request(prdev);\n\n\trcu_read_unlock();\n\treturn prdev != NULL;\n}',
        ),
  });
  const e = await refusalsOf(patch);
  const sig = e.refusals.filter((r) => r.code === 'KLP-SIGNATURE-CHANGED');
  assert.equal(sig.length, 1, e.refusals.map((r) => `${r.code}: ${r.message}`).join('\n'));
  assert.match(sig[0]!.message, /__page_reporting_notify/);
  assert.ok(sig[0]!.detail?.some((l) => /before: .*void __page_reporting_notify \(void\)/.test(l)));
  assert.ok(sig[0]!.detail?.some((l) => /after: .*bool __page_reporting_notify \(void\)/.test(l)));
});

test('a field added to a struct of a .c file is refused as KLP-STRUCT-CHANGED with file:line', async () => {
  const patch = makePatch('proc-fs-context-field', {
    'fs/proc/root.c': (t) =>
      t.replace('\tenum proc_pidonly\tpidonly;\n};', '\tenum proc_pidonly\tpidonly;\n\tbool\t\t\tquiet;\n};'),
  });
  const e = await refusalsOf(patch);
  const s = e.refusals.filter((r) => r.code === 'KLP-STRUCT-CHANGED');
  assert.equal(s.length, 1, e.refusals.map((r) => `${r.code}: ${r.message}`).join('\n'));
  assert.match(s[0]!.message, /struct proc_fs_context/);
  assert.equal(s[0]!.location?.file, 'fs/proc/root.c');
  assert.equal(s[0]!.location?.line, 35);
});

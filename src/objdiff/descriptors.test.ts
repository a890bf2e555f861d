/*
 * A new pr_debug carried (descriptors.ts): objects compiled with the default 6.1 kernel's own kbuild
 * flags, a changed function gaining a second pr_debug. The new `_ddebug` descriptor goes into the diff
 * object's own `__dyndbg` with its strings, the `__jump_table` entry of its static key points at the
 * carried copy, and the existing pr_debug of the same function stays a reference to the running kernel.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readElfFile } from '../elf/index.js';
import type { ElfObject, ElfSection } from '../elf/model.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { objectDiffJson } from './json.js';
import { diffObjects } from './objdiff.js';
import { compileKernelC, type KernelCompiler, kernelCompiler } from './testing/kernel-objects.js';
import { writeDiffObject } from './write.js';

let k: KernelCompiler;
before(async () => {
  const target = await ensureKernel(defaultRelease());
  k = kernelCompiler(target.sourceTree, target.config);
});
after(() => rmSync(k.dir, { recursive: true, force: true }));

const SOURCE = (fix: string) => `
#include <linux/kernel.h>
#include <linux/printk.h>
noinline int keep(int x) { pr_debug("keep %d\\n", x); return x * 7 + 3; }
noinline int fix(int x) { ${fix} return x + 1; }
`;

/** The NUL-terminated string a relocation of `section` at `offset` points to. */
function stringAt(obj: ElfObject, section: ElfSection, offset: number): string | undefined {
  const r = obj
    .relocationsFor(section)
    .flatMap((x) => x.relocations!)
    .find((x) => Number(x.offset) === offset);
  const target = r?.symbol?.section;
  if (!r || !target) return undefined;
  const at = Number(r.addend) + (r.symbol!.type === 3 ? 0 : Number(r.symbol!.value));
  const end = target.data.indexOf(0, at);
  return Buffer.from(target.data.subarray(at, end)).toString('latin1');
}

describe('new pr_debug descriptors (6.1 kbuild objects)', () => {
  test('a new descriptor is carried in the diff object`s own __dyndbg, keyed by its jump entry', async () => {
    const orig = await compileKernelC(k, SOURCE('pr_debug("fix %d\\n", x);'), { objtool: false });
    const patched = await compileKernelC(
      k,
      SOURCE('pr_debug("fix new %d\\n", x); pr_debug("fix %d\\n", x); x++;'),
      { objtool: false },
    );
    const d = await diffObjects(orig, patched);
    assert.deepEqual(
      d.refusals.map((r) => r.code),
      [],
    );
    assert.equal(d.functions.find((f) => f.name === 'fix')?.change, 'changed');
    assert.equal(d.functions.find((f) => f.name === 'keep')?.change, 'same');
    const [table, carried] = [...d.selection.descriptors][0] ?? [];
    assert.equal(table?.name, '__dyndbg');
    assert.equal(carried?.length, 1, 'only the new descriptor is carried');
    const size = carried![0]!.size;
    assert.ok(size > 0 && table!.size === 3 * size, 'the patched unit has three descriptors of that size');
    assert.deepEqual((objectDiffJson(d).carried as { descriptors: unknown }).descriptors, {
      __dyndbg: [carried![0]!.name],
    });
    const twinned = [...d.references].filter(([s]) => s.section?.name === '__dyndbg');
    assert.equal(twinned.length, 1, "the existing pr_debug of fix stays the running kernel's");
    assert.equal(twinned[0]![1].twinless, false);

    const out = join(k.dir, 'dyndbg-diff.o');
    const obj = await writeDiffObject(d, out);
    const dyndbg = obj.section('__dyndbg')!;
    assert.equal(dyndbg.size, size, 'one descriptor in the diff object');
    const desc = obj.symbols.find((s) => s.section === dyndbg && s.type === 1);
    assert.equal(desc?.value, 0n);
    // struct _ddebug { modname, function, filename, format, ... }: the carried strings
    assert.equal(stringAt(obj, dyndbg, 8), 'fix');
    assert.equal(stringAt(obj, dyndbg, 24), 'fix new %d\n');
    // both jump entries of fix are kept; the new one is keyed on the carried descriptor's static key
    const jump = obj.section('__jump_table')!;
    const keys = obj
      .relocationsFor(jump)
      .flatMap((x) => x.relocations!)
      .filter((r) => Number(r.offset) % 16 === 8);
    assert.equal(keys.length, 2);
    const own = keys.filter((r) => r.symbol === desc);
    assert.equal(own.length, 1, 'one entry keyed on the carried descriptor');
    assert.ok(own[0]!.addend > 0n && own[0]!.addend < BigInt(size), 'at its key, inside the descriptor');
    assert.ok(
      keys.some((r) => r.symbol !== desc && r.symbol?.shndx === 0),
      'the other is keyed on the running kernel`s descriptor (undefined here)',
    );
    // readelf agrees: the key field names the descriptor's symbol
    const readelf = execFileSync('readelf', ['-rW', out], { encoding: 'utf8' });
    const section = readelf.split(/Relocation section /).find((s) => s.startsWith("'.rela__jump_table'"));
    assert.match(section ?? '', new RegExp(`R_X86_64_PC64\\s+0+ ${desc!.name.replace(/\./g, '\\.')} \\+`));
    assert.equal((await readElfFile(out)).section('__dyndbg')?.size, size);
  });
});

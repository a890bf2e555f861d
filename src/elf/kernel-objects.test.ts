/*
 * The ELF engine on real kernel objects of the target kernel, checked against binutils.
 *
 * Objects are compiled here from the prepared tree (test-objects.ts: all of fs/proc plus a fixed sample
 * of kernel/ and mm/, with and without -ffunction-sections -fdata-sections; SUTURE_ELF_FULL=1 for every
 * object of the three directories). For each one:
 *  - reader: sections, symbols, relocations and groups agree field by field with `readelf -W`;
 *  - writer: read → write gives a file that `readelf -aW` lists identically (file offsets aside) and
 *    that `objdump -dr` disassembles identically, and that links (ld -r) into the same result;
 *  - edits: removing function sections and adding klp relocation sections keeps a file binutils accepts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { SHF, SHN, SHT, STB, STT } from './constants.js';
import { createSection, createSymbol } from './model.js';
import { readElf, readElfFile } from './reader.js';
import {
  compareWithReadelf,
  objdumpNormalized,
  readelf,
  readelfAllNormalized,
} from './testing/readelf-compare.js';
import { kernelTestObjects, type TestObject } from './testing/test-objects.js';
import { writeElf } from './writer.js';

let objects: TestObject[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-'));

before(async () => {
  const target = await ensureKernel(defaultRelease());
  objects = await kernelTestObjects(target.sourceTree);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('the object set is real: fs/proc, kernel and mm, both flavours, with objtool sections', async () => {
  const dirs = new Set(objects.map((o) => o.object.split('/')[0]));
  assert.deepEqual([...dirs].sort(), ['fs', 'kernel', 'mm']);
  assert.ok(objects.filter((o) => o.object.startsWith('fs/proc/')).length >= 25);
  const meminfo = objects.find((o) => o.object === 'fs/proc/meminfo.o' && o.flavour === 'sections');
  assert.ok(meminfo);
  const obj = await readElfFile(meminfo.path);
  assert.ok(obj.section('.text.meminfo_proc_show'), '-ffunction-sections gives one section per function');
  assert.ok(obj.section('.orc_unwind'), 'objtool ran');
});

test('reader agrees with readelf -W on sections, symbols, relocations and groups of every object', async () => {
  const mismatches: string[] = [];
  for (const o of objects) mismatches.push(...compareWithReadelf(await readElfFile(o.path), o.path, 5));
  assert.deepEqual(mismatches.slice(0, 20), []);
});

test('the readelf comparison catches a wrong field', async () => {
  const o = objects.find((x) => x.object === 'fs/proc/cmdline.o')!;
  const obj = await readElfFile(o.path);
  obj.symbols[obj.symbols.length - 1]!.value += 1n;
  obj.sections[0]!.flags ^= SHF.WRITE;
  const rel = obj.sections.find((s) => (s.relocations?.length ?? 0) > 0)!.relocations![0]!;
  rel.addend += 1n;
  const bad = compareWithReadelf(obj, o.path);
  assert.equal(bad.length, 3, bad.join('\n'));
});

test('read → write round trip: readelf -aW (offsets aside) and objdump -dr identical for every object', async () => {
  const diffs: string[] = [];
  for (const o of objects) {
    const out = join(tmp, 'roundtrip.o');
    writeFileSync(out, writeElf(await readElfFile(o.path)));
    const a = readelfAllNormalized(o.path).split('\n');
    const b = readelfAllNormalized(out).split('\n');
    const i = a.findIndex((l, k) => l !== b[k]);
    if (i >= 0 || a.length !== b.length)
      diffs.push(`${o.flavour} ${o.object}: readelf line ${i}: ${a[i]} | ${b[i]}`);
    if (objdumpNormalized(o.path) !== objdumpNormalized(out))
      diffs.push(`${o.flavour} ${o.object}: objdump -dr differs`);
  }
  assert.deepEqual(diffs, []);
});

test('rewritten objects link into the same result: ld -r of all fs/proc objects, original vs rewritten', () => {
  for (const flavour of ['plain', 'sections'] as const) {
    const originals = objects.filter((o) => o.flavour === flavour && o.object.startsWith('fs/proc/'));
    const rewritten = originals.map((o, i) => {
      const p = join(tmp, `${flavour}-${i}.o`);
      writeFileSync(p, writeElf(readElf(readFileSync(o.path), o.path)));
      return p;
    });
    const a = join(tmp, `${flavour}-orig-linked.o`);
    const b = join(tmp, `${flavour}-rt-linked.o`);
    for (const [out, inputs] of [
      [a, originals.map((o) => o.path)],
      [b, rewritten],
    ] as const) {
      const ld = spawnSync('ld', ['-r', '-o', out, ...inputs], { encoding: 'utf8' });
      assert.equal(ld.status, 0, ld.stderr);
    }
    assert.equal(readelfAllNormalized(b), readelfAllNormalized(a), `${flavour}: linked objects differ`);
    assert.equal(objdumpNormalized(b), objdumpNormalized(a), `${flavour}: linked code differs`);
  }
});

test('removing function sections renumbers everything and binutils accepts the result', async () => {
  const o = objects.find((x) => x.object === 'fs/proc/meminfo.o' && x.flavour === 'sections')!;
  const obj = await readElfFile(o.path);
  const keep = obj.section('.text.meminfo_proc_show')!;
  const drop = obj.sections.filter(
    (s) => s.name.startsWith('.text.') && s !== keep && (s.flags & SHF.EXECINSTR) !== 0,
  );
  assert.ok(drop.length > 0);
  const before = obj.sections.length;
  const { droppedRelocations } = obj.removeSections(drop);
  assert.ok(
    droppedRelocations.some((d) => d.section.name === '.rela__mcount_loc'),
    '__mcount_loc entries of removed functions are reported',
  );
  assert.ok(obj.sections.length < before - drop.length, 'their .rela sections went too');
  const out = join(tmp, 'cut.o');
  writeFileSync(out, writeElf(obj));
  const r = spawnSync('readelf', ['-aW', out], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.doesNotMatch(r.stderr, /warning|error/i);
  const back = readElf(readFileSync(out), out);
  assert.equal(back.sections.length, obj.sections.length);
  const text = back.section('.text.meminfo_proc_show')!;
  assert.equal(back.relocationsFor(text).length, 1, 'the kept function keeps its relocations');
  // every symbol of a removed section is now undefined or gone; locals still come first
  const symtab = back.symtab!;
  const firstGlobal = symtab.symbols!.findIndex((s) => s.bind !== STB.LOCAL) + 1;
  assert.equal(symtab.info, firstGlobal);
  const ld = spawnSync('ld', ['-r', '-o', join(tmp, 'cut-linked.o'), out], { encoding: 'utf8' });
  assert.equal(ld.status, 0, ld.stderr);
  assert.deepEqual(compareWithReadelf(back, out), []);
});

test('klp relocation sections (SHF_RELA_LIVEPATCH) and SHN_LIVEPATCH symbols are written as the kernel expects', async () => {
  const o = objects.find((x) => x.object === 'fs/proc/meminfo.o' && x.flavour === 'sections')!;
  const obj = await readElfFile(o.path);
  const text = obj.section('.text.meminfo_proc_show')!;
  const rela = obj.relocationsFor(text)[0]!;
  const klpSym = obj.addSymbol(
    createSymbol({
      name: '.klp.sym.vmlinux.si_swapinfo,0',
      bind: STB.GLOBAL,
      type: STT.FUNC,
      shndx: SHN.LIVEPATCH,
    }),
  );
  const moved = rela.relocations!.splice(0, 2).map((r) => ({ ...r, symbol: klpSym }));
  const klp = obj.addSection(
    createSection({
      name: '.klp.rela.vmlinux..text.meminfo_proc_show',
      type: SHT.RELA,
      flags: SHF.ALLOC | SHF.INFO_LINK | SHF.RELA_LIVEPATCH,
      link: obj.symtab!,
      infoSection: text,
      addralign: 8,
      entsize: 24,
      relocations: moved,
    }),
  );
  const bytes = writeElf(obj);
  const back = readElf(bytes);
  const k = back.section(klp.name)!;
  assert.equal(k.flags & SHF.RELA_LIVEPATCH, SHF.RELA_LIVEPATCH);
  assert.equal(k.infoSection?.name, '.text.meminfo_proc_show');
  assert.equal(k.relocations!.length, 2);
  for (const r of k.relocations!) {
    assert.equal(r.symbol?.name, '.klp.sym.vmlinux.si_swapinfo,0');
    assert.equal(r.symbol?.shndx, SHN.LIVEPATCH);
    assert.equal(r.symbol?.section, null);
  }
  const out = join(tmp, 'klp.o');
  writeFileSync(out, bytes);
  const syms = readelf(['-sW'], out);
  assert.match(syms, /FUNC +GLOBAL DEFAULT OS \[0xff20\] \.klp\.sym\.vmlinux\.si_swapinfo,0/);
  const secs = readelf(['-SW'], out);
  assert.match(secs, /\.klp\.rela\.vmlinux\.\.text\.meminfo_proc_show RELA .* AIo /);
});

/*
 * The writer's invariants, each checked by reading the written file back with both our reader and
 * binutils (readelf/ld), on the assembled tiny object: round trip, locals before globals, deduplicated
 * string tables, renumbering after removal (relocations, groups, symbols), extended section numbering
 * past 0xff00 sections, and refusing dangling references.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { SHF, SHN, SHT, STB, STT } from './constants.js';
import { createSection, createSymbol } from './model.js';
import { readElf } from './reader.js';
import { buildStringTable } from './string-table.js';
import {
  compareWithReadelf,
  objdumpNormalized,
  readelf,
  readelfAllNormalized,
} from './testing/readelf-compare.js';
import { tinyObject } from './testing/tiny-object.js';
import { writeElf } from './writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-writer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function save(bytes: Uint8Array): string {
  const p = join(tmp, `w${n++}.o`);
  writeFileSync(p, bytes);
  return p;
}

test('round trip of an untouched object is identical for readelf -aW and objdump -dr', () => {
  const orig = save(tinyObject());
  const out = save(writeElf(readElf(tinyObject())));
  assert.equal(readelfAllNormalized(out), readelfAllNormalized(orig));
  assert.equal(objdumpNormalized(out), objdumpNormalized(orig));
});

test('string tables are deduplicated with tail merging', () => {
  const { data, offsets } = buildStringTable(['.rela.text', '.text', 'text', '.data', '.rela.text', '']);
  assert.equal(data.toString('latin1'), '\0.rela.text\0.data\0');
  assert.equal(offsets.get('.text'), offsets.get('.rela.text')! + 5);
  assert.equal(offsets.get('text'), offsets.get('.rela.text')! + 6);
  assert.equal(offsets.get(''), 0);
  // after an edit the symbol string table is rebuilt compactly
  const obj = readElf(tinyObject());
  for (const s of obj.symbols) if (s.name === 'helper') s.name = 'entry_helper_renamed';
  obj.addSymbol(createSymbol({ name: 'entry', bind: STB.LOCAL })); // same name as a global: stored once
  const back = readElf(writeElf(obj));
  const strtab = Buffer.from(back.section('.strtab')!.data).toString('latin1');
  assert.equal(strtab.split('\0entry\0').length - 1 + (strtab.startsWith('entry\0') ? 1 : 0), 1);
  assert.ok(back.symbols.some((s) => s.name === 'entry_helper_renamed'));
});

test('locals are moved before globals and sh_info is the first global', () => {
  const obj = readElf(tinyObject());
  const text = obj.section('.text')!;
  obj.addSymbol(
    createSymbol({ name: 'late_local', bind: STB.LOCAL, type: STT.FUNC, section: text, value: 29n, size: 1 }),
  );
  const path = save(writeElf(obj));
  const back = readElf(writeElf(obj));
  const syms = back.symbols;
  const firstGlobal = syms.findIndex((s) => s.bind !== STB.LOCAL);
  assert.ok(syms.slice(0, firstGlobal).some((s) => s.name === 'late_local'));
  assert.ok(syms.slice(firstGlobal).every((s) => s.bind !== STB.LOCAL));
  assert.equal(back.symtab!.info, firstGlobal + 1);
  assert.deepEqual(compareWithReadelf(back, path), []);
  // relocations still name the same symbols after the renumbering
  const rels = back.section('.rela.text')!.relocations!.map((r) => r.symbol?.name ?? r.symbol?.section?.name);
  assert.deepEqual(rels, ['', 'message', 'external_fn', 'weak_fn']);
});

test('removing a section renumbers relocation targets, links, groups and symbols; ld accepts it', () => {
  const obj = readElf(tinyObject());
  const data = obj.section('.data')!;
  const { droppedRelocations } = obj.removeSections([data]);
  // .rela.data went with .data; .rela.text's reference to the .data section symbol went with it
  assert.equal(obj.section('.rela.data'), undefined);
  assert.deepEqual(
    droppedRelocations.map((d) => d.section.name),
    ['.rela.text'],
  );
  const counter = obj.symbols.find((s) => s.name === 'counter')!;
  assert.equal(counter.section, null);
  assert.equal(counter.shndx, SHN.UNDEF);
  const path = save(writeElf(obj));
  const back = readElf(writeElf(obj));
  assert.deepEqual(compareWithReadelf(back, path), []);
  const group = back.section('.group')!;
  assert.deepEqual(
    group.group!.members.map((m) => m.name),
    ['.text.inline_fn'],
  );
  assert.equal(group.group!.signature?.name, 'inline_fn');
  const rela = back.section('.rela.text')!;
  assert.equal(rela.infoSection?.name, '.text');
  assert.equal(rela.link?.name, '.symtab');
  const ld = spawnSync('ld', ['-r', '-o', join(tmp, 'linked.o'), path], { encoding: 'utf8' });
  assert.equal(ld.status, 0, ld.stderr);
});

test('extended section numbering past 0xff00 sections: e_shnum 0, SHN_XINDEX, .symtab_shndx', () => {
  const obj = readElf(tinyObject());
  const count = 0xff00 + 50;
  let last = obj.sections[0]!;
  for (let i = 0; i < count; i++) {
    last = obj.addSection(
      createSection({
        name: `.text.f${i}`,
        type: SHT.PROGBITS,
        flags: SHF.ALLOC | SHF.EXECINSTR,
        data: Uint8Array.of(0xc3),
      }),
    );
  }
  const high = obj.addSymbol(
    createSymbol({ name: 'in_high_section', bind: STB.GLOBAL, type: STT.FUNC, section: last, size: 1 }),
  );
  const bytes = writeElf(obj);
  assert.equal(Buffer.from(bytes).readUInt16LE(60), 0, 'e_shnum = 0');
  assert.equal(Buffer.from(bytes).readUInt16LE(62), SHN.XINDEX, 'e_shstrndx = SHN_XINDEX');
  const path = save(bytes);
  const header = readelf(['-hW'], path);
  assert.match(header, new RegExp(`Number of section headers:\\s+0 \\(${obj.sections.length + 1}\\)`));
  assert.match(header, /Section header string table index:\s+65535 \(\d+\)/);
  const back = readElf(bytes, path);
  assert.equal(back.sections.length, obj.sections.length);
  assert.ok(back.section('.symtab_shndx'), '.symtab_shndx was created');
  const sym = back.symbols.find((s) => s.name === high.name)!;
  assert.equal(sym.section?.name, last.name);
  assert.ok(back.sectionIndex(sym.section!) >= 0xff00);
  assert.deepEqual(compareWithReadelf(back, path), []);
  // a second round trip is stable
  assert.equal(Buffer.compare(Buffer.from(writeElf(readElf(bytes))), Buffer.from(bytes)), 0);
});

test('dangling references are refused with ELF-WRITE-* errors, and only ET_REL is written', () => {
  const obj = readElf(tinyObject());
  const text = obj.section('.text')!;
  obj.sections = obj.sections.filter((s) => s !== text); // removed by hand, references left behind
  assert.throws(
    () => writeElf(obj),
    (e: unknown) => isSutureError(e) && e.code.startsWith('ELF-WRITE-DANGLING'),
  );
  const obj2 = readElf(tinyObject());
  const rela = obj2.section('.rela.text')!;
  rela.relocations![0]!.symbol = createSymbol({ name: 'not_in_table' });
  assert.throws(
    () => writeElf(obj2),
    (e: unknown) =>
      isSutureError(e) &&
      e.code === 'ELF-WRITE-DANGLING-SYMBOL' &&
      e.diagnostic.location?.symbol === 'not_in_table',
  );
  const exec = readElf(tinyObject());
  exec.header.type = 2;
  assert.throws(
    () => writeElf(exec),
    (e: unknown) => isSutureError(e) && e.code === 'ELF-WRITE-UNSUPPORTED',
  );
});

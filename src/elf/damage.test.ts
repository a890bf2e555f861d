/*
 * Bad input: every kind of damage gives a typed SutureError naming the field and its byte offset —
 * never a raw exception, a hang or an allocation sized by a corrupt count. Each case damages a real
 * object (tiny-object.ts, assembled by GNU as) in one precise place.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError, type SutureError } from '../diagnostic.js';
import { readBuildId } from './build-id.js';
import { SHT } from './constants.js';
import { readHeaders } from './headers.js';
import { readElf } from './reader.js';
import { indexSymbols } from './symbol-index.js';
import { TINY_BUILD_ID, tinyObject } from './testing/tiny-object.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-damage-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function expectError(bytes: Buffer, code: string, field?: RegExp): SutureError {
  let caught: unknown;
  try {
    readElf(bytes, 'damaged.o');
  } catch (e) {
    caught = e;
  }
  assert.ok(isSutureError(caught), `expected SutureError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.diagnostic.location?.file, 'damaged.o');
  assert.equal(typeof caught.diagnostic.location?.offset, 'number');
  if (field) assert.match(caught.diagnostic.location?.field ?? '', field);
  assert.ok(caught.diagnostic.hint, 'a hint says what to do');
  return caught;
}

const layout = () => readHeaders(tinyObject());
const section = (name: string) => {
  const s = layout().sections.find((x) => x.name === name);
  assert.ok(s, name);
  return s;
};

test('the undamaged object reads cleanly and has what the cases below damage', () => {
  const obj = readElf(tinyObject());
  assert.ok(obj.section('.group')?.group);
  assert.ok(obj.symtab);
  assert.equal(obj.section('.rela.text')?.relocations?.length, 4);
  assert.equal(
    Buffer.from(obj.section('.note.gnu.build-id')!.notes![0]!.desc).toString('hex'),
    TINY_BUILD_ID,
  );
});

test('not ELF, wrong class, wrong endianness, wrong machine', () => {
  expectError(Buffer.from('#!/bin/sh\necho hello\n'), 'ELF-NOT-ELF', /EI_MAG/);
  const c = tinyObject();
  c[4] = 1;
  expectError(c, 'ELF-WRONG-CLASS', /EI_CLASS/);
  const d = tinyObject();
  d[5] = 2;
  expectError(d, 'ELF-WRONG-ENDIAN', /EI_DATA/);
  const m = tinyObject();
  m.writeUInt16LE(183, 18); // aarch64
  expectError(m, 'ELF-WRONG-MACHINE', /e_machine/);
});

test('truncation anywhere is ELF-TRUNCATED (or ELF-BAD-OFFSET / ELF-NOT-ELF), never a crash', () => {
  const full = tinyObject();
  expectError(full.subarray(0, 0), 'ELF-NOT-ELF');
  expectError(full.subarray(0, 40), 'ELF-TRUNCATED', /e_ident/);
  const shoff = Number(full.readBigUInt64LE(40));
  expectError(full.subarray(0, shoff + 100), 'ELF-BAD-COUNT', /e_shnum/);
  for (let len = 64; len < full.length; len += 7) {
    try {
      readElf(full.subarray(0, len), 'damaged.o');
    } catch (e) {
      assert.ok(isSutureError(e), `length ${len}: ${String(e)}`);
      assert.match(e.code, /^ELF-(TRUNCATED|BAD-OFFSET|BAD-COUNT)$/, `length ${len}: ${e.message}`);
    }
  }
});

test('offsets and sizes past the end name the section field', () => {
  const b = tinyObject();
  b.writeBigUInt64LE(BigInt(b.length + 4096), 40);
  expectError(b, 'ELF-BAD-OFFSET', /^e_shoff$/);
  const t = section('.text');
  const o = tinyObject();
  o.writeBigUInt64LE(BigInt(o.length + 1), t.headerOffset + 24);
  const e = expectError(o, 'ELF-BAD-OFFSET', /section\[2\]\.sh_offset/);
  assert.equal(e.diagnostic.location?.offset, t.headerOffset + 24);
  const s = tinyObject();
  s.writeBigUInt64LE(0xffffffffn, t.headerOffset + 32);
  expectError(s, 'ELF-TRUNCATED', /section\[2\]\.sh_offset/);
  const huge = tinyObject();
  huge.writeBigUInt64LE(0xffffffffffffff00n, t.headerOffset + 32);
  expectError(huge, 'ELF-BAD-SIZE', /sh_size/);
});

test('cyclic or wrong-typed links are ELF-BAD-LINK', () => {
  const sym = section('.symtab');
  const self = tinyObject();
  self.writeUInt32LE(sym.index, sym.headerOffset + 40); // .symtab → .symtab
  expectError(self, 'ELF-BAD-LINK', /sh_link/);
  const rela = section('.rela.text');
  const loop = tinyObject();
  loop.writeUInt32LE(rela.index, rela.headerOffset + 40); // .rela.text → itself
  expectError(loop, 'ELF-BAD-LINK', /sh_link/);
  const out = tinyObject();
  out.writeUInt32LE(999, rela.headerOffset + 40);
  expectError(out, 'ELF-BAD-LINK', /sh_link/);
  const info = tinyObject();
  info.writeUInt32LE(999, rela.headerOffset + 44);
  expectError(info, 'ELF-BAD-INFO', /sh_info/);
  const shstr = tinyObject();
  shstr.writeUInt16LE(section('.text').index, 62); // e_shstrndx → a PROGBITS
  expectError(shstr, 'ELF-BAD-LINK', /sh_type/);
  const shstrOut = tinyObject();
  shstrOut.writeUInt16LE(500, 62);
  expectError(shstrOut, 'ELF-BAD-INDEX', /e_shstrndx/);
});

test('absurd counts: e_shnum, extended count, symbol and relocation sizes, symbol indices', () => {
  const n = tinyObject();
  n.writeUInt16LE(0xfff0, 60);
  expectError(n, 'ELF-BAD-COUNT', /e_shnum/);
  const x = tinyObject();
  x.writeUInt16LE(0, 60);
  x.writeBigUInt64LE(0xffffffffn, Number(x.readBigUInt64LE(40)) + 32); // section 0 sh_size = count
  expectError(x, 'ELF-BAD-COUNT', /section\[0\]\.sh_size/);
  const sym = section('.symtab');
  const odd = tinyObject();
  odd.writeBigUInt64LE(BigInt(sym.size - 5), sym.headerOffset + 32);
  expectError(odd, 'ELF-BAD-SIZE', /sh_size/);
  const ent = tinyObject();
  ent.writeBigUInt64LE(16n, sym.headerOffset + 56);
  expectError(ent, 'ELF-BAD-ENTSIZE', /sh_entsize/);
  const rela = section('.rela.text');
  const r = tinyObject();
  r.writeUInt32LE(0x7fffffff, rela.offset + 12); // r_info symbol index of relocation 0
  const e = expectError(r, 'ELF-BAD-SYMBOL', /r_info/);
  assert.equal(e.diagnostic.location?.offset, rela.offset + 8);
  const firstGlobal = tinyObject();
  firstGlobal.writeUInt32LE(10_000, sym.headerOffset + 44);
  expectError(firstGlobal, 'ELF-BAD-INFO', /sh_info/);
});

test('string tables: unterminated, and names pointing outside', () => {
  const str = section('.strtab');
  const u = tinyObject();
  u[str.offset + str.size - 1] = 0x41;
  expectError(u, 'ELF-STRTAB-UNTERMINATED');
  const shstr = section('.shstrtab');
  const v = tinyObject();
  v[shstr.offset + shstr.size - 1] = 0x41;
  expectError(v, 'ELF-STRTAB-UNTERMINATED');
  const sym = section('.symtab');
  const w = tinyObject();
  w.writeUInt32LE(0x10000, sym.offset + 24 * 3); // symbol 3 st_name
  expectError(w, 'ELF-BAD-NAME', /\.symtab\[3\]\.st_name/);
  const name = tinyObject();
  name.writeUInt32LE(0x10000, section('.text').headerOffset);
  expectError(name, 'ELF-BAD-NAME', /section\[2\]\.sh_name/);
});

test('section indices: st_shndx, group members, SHN_XINDEX without a table', () => {
  const sym = section('.symtab');
  const s = tinyObject();
  s.writeUInt16LE(500, sym.offset + 24 * 3 + 6);
  expectError(s, 'ELF-BAD-SHNDX', /st_shndx/);
  const x = tinyObject();
  x.writeUInt16LE(0xffff, sym.offset + 24 * 3 + 6);
  expectError(x, 'ELF-BAD-SHNDX', /st_shndx/);
  const g = section('.group');
  assert.equal(g.type, SHT.GROUP);
  const m = tinyObject();
  m.writeUInt32LE(4000, g.offset + 4);
  expectError(m, 'ELF-BAD-INDEX', /\.group\[1\]/);
  const z = tinyObject();
  z.writeUInt32LE(0, g.offset + 4);
  expectError(z, 'ELF-BAD-INDEX', /\.group\[1\]/);
});

test('notes: a descriptor running past its section', () => {
  const n = section('.note.gnu.build-id');
  const b = tinyObject();
  b.writeUInt32LE(0x7fffffff, n.offset + 4); // descsz
  expectError(b, 'ELF-TRUNCATED', /note/);
});

test('file readers (build id, symbol index) report damage the same way and close their files', async () => {
  const good = join(tmp, 'good.o');
  writeFileSync(good, tinyObject());
  assert.equal(await readBuildId(good), TINY_BUILD_ID);
  const bad = join(tmp, 'bad.o');
  const b = tinyObject();
  b.writeBigUInt64LE(BigInt(b.length + 4096), 40);
  writeFileSync(bad, b);
  await assert.rejects(readBuildId(bad), (e: unknown) => isSutureError(e) && e.code === 'ELF-BAD-OFFSET');
  await assert.rejects(indexSymbols(bad), (e: unknown) => isSutureError(e) && e.code === 'ELF-BAD-OFFSET');
  await assert.rejects(
    readBuildId(join(tmp, 'missing.o')),
    (e: unknown) => isSutureError(e) && e.code === 'ELF-UNREADABLE',
  );
  const noNote = tinyObject();
  noNote.writeUInt32LE(SHT.PROGBITS, section('.note.gnu.build-id').headerOffset + 4);
  writeFileSync(bad, noNote);
  await assert.rejects(readBuildId(bad), (e: unknown) => isSutureError(e) && e.code === 'ELF-NO-BUILD-ID');
  const str = section('.strtab');
  const u = tinyObject();
  u[str.offset + str.size - 1] = 0x41;
  writeFileSync(bad, u);
  await assert.rejects(
    indexSymbols(bad),
    (e: unknown) => isSutureError(e) && e.code === 'ELF-STRTAB-UNTERMINATED',
  );
});

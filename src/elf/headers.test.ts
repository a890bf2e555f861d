/*
 * One header reader: the whole-buffer, blocking and async drivers of headers.ts's walk give the same
 * sections for a good file and the same diagnostic (code, field, offset) for every damaged one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { SHN } from './constants.js';
import { ElfFile } from './file.js';
import { withElfFileSync } from './file-sync.js';
import { readHeaders } from './headers.js';
import { tinyObject } from './testing/tiny-object.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-headers-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** What a reader made of a file: its section names and types, or the diagnostic it raised. */
async function outcome(read: () => Promise<{ sections: { name: string; type: number }[] }>): Promise<string> {
  try {
    const { sections } = await read();
    return `ok ${sections.map((s) => `${s.name}:${s.type}`).join(',')}`;
  } catch (e) {
    assert.ok(isSutureError(e), `not a SutureError: ${String(e)}`);
    const at = e.diagnostic.location;
    return `${e.code} ${at?.field} @${at?.offset}`;
  }
}

async function threeWays(bytes: Buffer, name: string): Promise<string[]> {
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return [
    await outcome(async () => readHeaders(bytes, path)),
    await outcome(async () => {
      const f = await ElfFile.open(path);
      await f.close();
      return f;
    }),
    await outcome(async () => withElfFileSync(path, (f) => f)),
  ];
}

function damaged(): [string, Buffer][] {
  const good = tinyObject();
  const shoff = Number(good.readBigUInt64LE(40));
  const { sections, shstrndx } = readHeaders(good);
  const names = sections[shstrndx]!;
  const cases: [string, Buffer][] = [['good', good]];
  for (let len = 0; len < good.length; len += 37) cases.push([`cut-${len}`, good.subarray(0, len)]);
  const edit = (name: string, f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    cases.push([name, b]);
  };
  edit('shoff-past-end', (b) => b.writeBigUInt64LE(BigInt(b.length + 64), 40));
  edit('shnum-huge', (b) => b.writeUInt16LE(0xfff0, 60));
  edit('shstrndx-out', (b) => b.writeUInt16LE(sections.length + 3, 62));
  edit('shstrndx-not-strtab', (b) => b.writeUInt16LE(1, 62));
  edit('shstrndx-xindex-no-link', (b) => b.writeUInt16LE(SHN.XINDEX, 62));
  edit('shstrtab-unterminated', (b) => {
    b[names.offset + names.size - 1] = 0x41;
  });
  edit('shstrtab-past-end', (b) => b.writeBigUInt64LE(BigInt(b.length), names.headerOffset + 24));
  edit('name-outside', (b) => b.writeUInt32LE(names.size + 100, shoff + 64));
  edit('link-out', (b) => b.writeUInt32LE(sections.length + 1, shoff + 64 + 40));
  edit('align-odd', (b) => b.writeBigUInt64LE(3n, shoff + 64 + 48));
  return cases;
}

test('the buffer, blocking and async header readers agree on good and damaged files', async () => {
  const seen = new Set<string>();
  for (const [name, bytes] of damaged()) {
    const [buffer, async, sync] = await threeWays(bytes, `${name}.o`);
    assert.equal(async, buffer, `${name}: ElfFile.open differs from readHeaders`);
    assert.equal(sync, buffer, `${name}: withElfFileSync differs from readHeaders`);
    seen.add(buffer!.split(' ')[0]!);
  }
  // the cases reach the good path and each kind of header damage, not one error over and over
  for (const code of [
    'ok',
    'ELF-NOT-ELF',
    'ELF-TRUNCATED',
    'ELF-BAD-OFFSET',
    'ELF-BAD-COUNT',
    'ELF-BAD-INDEX',
  ])
    assert.ok(seen.has(code), `no case gave ${code}: ${[...seen].join(' ')}`);
  for (const code of ['ELF-BAD-LINK', 'ELF-STRTAB-UNTERMINATED', 'ELF-BAD-NAME', 'ELF-BAD-ALIGN'])
    assert.ok(seen.has(code), `no case gave ${code}: ${[...seen].join(' ')}`);
});

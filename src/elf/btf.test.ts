/*
 * The BTF reader: a blob built here by hand (one int, one struct of two members, one bitfield struct),
 * damaged blobs, and the real debug vmlinux of the cached kernels when present.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SutureError } from '../diagnostic.js';
import { parseBtfStructs, readBtfStructs } from './btf.js';

/** A BTF blob: header, the given type records, strings. */
function blob(types: number[], strings: string): Uint8Array {
  const t = Buffer.alloc(types.length * 4);
  for (const [i, v] of types.entries()) t.writeUInt32LE(v >>> 0, i * 4);
  const s = Buffer.from(strings, 'latin1');
  const h = Buffer.alloc(24);
  h.writeUInt16LE(0xeb9f, 0);
  h[2] = 1;
  h.writeUInt32LE(24, 4);
  h.writeUInt32LE(0, 8);
  h.writeUInt32LE(t.length, 12);
  h.writeUInt32LE(t.length, 16);
  h.writeUInt32LE(s.length, 20);
  return new Uint8Array(Buffer.concat([h, t, s]));
}

// strings: 0 "", 1 "int", 5 "pair", 10 "a", 12 "b", 14 "flags"
const STR = '\0int\0pair\0a\0b\0flags\0';
const kind = (k: number, vlen: number, kflag = 0) => ((kflag << 31) | (k << 24) | vlen) >>> 0;
const TYPES = [
  // [1] int: name, info, size, then the int encoding
  1,
  kind(1, 0),
  4,
  32,
  // [2] struct pair { int a; int b; } (12 bytes with padding, as a test of `size`)
  5,
  kind(4, 2),
  12,
  10,
  1,
  0,
  12,
  1,
  64,
  // [3] struct flags, bitfields (kind_flag): b at bit 8, width 4 in the top byte
  14,
  kind(4, 1, 1),
  2,
  12,
  1,
  (4 << 24) | 8,
];

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof SutureError ? e.diagnostic.code : String(e);
  }
  return 'no error';
};

describe('BTF reader', () => {
  test('reads structs with their sizes and member offsets', () => {
    const s = parseBtfStructs(blob(TYPES, STR));
    assert.equal(s.get('pair')?.size, 12);
    assert.deepEqual(s.get('pair')?.members, [
      { name: 'a', bitOffset: 0 },
      { name: 'b', bitOffset: 64 },
    ]);
    assert.deepEqual(s.get('flags')?.members, [{ name: 'b', bitOffset: 8 }]);
    assert.equal(s.has('int'), false, 'only structs and unions');
  });

  test('damaged blobs are ELF-BAD-BTF, never a crash', () => {
    const good = blob(TYPES, STR);
    const magic = good.slice();
    magic[0] = 0;
    assert.equal(
      code(() => parseBtfStructs(magic)),
      'ELF-BAD-BTF',
    );
    assert.equal(
      code(() => parseBtfStructs(good.subarray(0, good.length - 10))),
      'ELF-BAD-BTF',
    );
    const kindBad = blob([1, kind(31, 0), 4], STR);
    assert.equal(
      code(() => parseBtfStructs(kindBad)),
      'ELF-BAD-BTF',
    );
    const longVlen = blob([5, kind(4, 200), 12], STR);
    assert.equal(
      code(() => parseBtfStructs(longVlen)),
      'ELF-BAD-BTF',
    );
    const badName = blob([999, kind(4, 0), 4], STR);
    assert.equal(
      code(() => parseBtfStructs(badName)),
      'ELF-BAD-BTF',
    );
  });

  for (const [release, altInstr] of [
    ['6.1.0-53-cloud-amd64', 12],
    ['6.12.117+deb12-cloud-amd64', 14],
  ] as const) {
    const target = join(
      process.env.SUTURE_CACHE || join(homedir(), '.cache', 'suture'),
      'kernels',
      release,
      'target.json',
    );
    test(`the ${release} vmlinux: the special tables' structs`, {
      skip: !existsSync(target) && 'kernel not cached',
    }, () => {
      const { vmlinux } = JSON.parse(readFileSync(target, 'utf8')) as { vmlinux: string };
      const s = readBtfStructs(vmlinux)!;
      assert.equal(s.get('alt_instr')?.size, altInstr);
      assert.equal(s.get('bug_entry')?.size, 12);
      assert.equal(s.get('orc_entry')?.size, 6);
      assert.equal(s.get('jump_entry')?.size, 16);
      assert.equal(s.get('exception_table_entry')?.size, 12);
      assert.equal(s.get('static_call_site')?.size, 8);
      assert.equal(s.get('bug_entry')?.members.find((m) => m.name === 'line')?.bitOffset, 64);
    });
  }
});

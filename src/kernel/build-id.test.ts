/*
 * The GNU build id reader: agrees with binutils on a freshly linked ELF, refuses truncated and
 * non-ELF input with a located diagnostic instead of reading out of bounds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { SutureError } from '../diagnostic.js';
import { buildIdFromNotes, readBuildId } from './build-id.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-buildid-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function link(buildId: string): string {
  const c = join(dir, 'm.c');
  writeFileSync(c, 'int main(void) { return 0; }\n');
  const out = join(dir, `a-${buildId}`);
  const r = spawnSync('gcc', ['-o', out, c, `-Wl,--build-id=${buildId}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

test('reads the build id the linker wrote, as readelf shows it', () => {
  const exe = link('sha1');
  const readelf = spawnSync('readelf', ['-n', exe], { encoding: 'utf8' }).stdout;
  const want = /Build ID: ([0-9a-f]+)/.exec(readelf)?.[1];
  assert.ok(want, 'readelf shows a build id');
  assert.equal(readBuildId(exe), want);
  const explicit = link('0x0123456789abcdef0123456789abcdef01234567');
  assert.equal(readBuildId(explicit), '0123456789abcdef0123456789abcdef01234567');
});

test('a binary without a build id note is refused', () => {
  const exe = link('none');
  assert.throws(
    () => readBuildId(exe),
    (e: unknown) => (e as SutureError).code === 'KERNEL-NO-BUILD-ID',
  );
});

test('truncated and non-ELF files are refused with a location', () => {
  const exe = link('sha1');
  const bytes = readFileSync(exe);
  const cut = join(dir, 'cut');
  writeFileSync(cut, bytes.subarray(0, 200));
  assert.throws(
    () => readBuildId(cut),
    (e: unknown) => {
      const d = (e as SutureError).diagnostic;
      return d.code === 'ELF-TRUNCATED' && d.location?.file === cut;
    },
  );
  const text = join(dir, 'text');
  writeFileSync(text, 'not an elf file at all, but long enough to have a header of sixty-four bytes....');
  assert.throws(
    () => readBuildId(text),
    (e: unknown) => (e as SutureError).code === 'ELF-NOT-ELF',
  );
});

test('notes with other owners are skipped; an overrunning note stops the walk', () => {
  const note = (name: string, type: number, desc: Buffer) => {
    const n = Buffer.from(`${name}\0`);
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
    const h = Buffer.alloc(12);
    h.writeUInt32LE(n.length, 0);
    h.writeUInt32LE(desc.length, 4);
    h.writeUInt32LE(type, 8);
    return Buffer.concat([h, pad(n), pad(desc)]);
  };
  const buf = Buffer.concat([
    note('Xen', 3, Buffer.from([1, 2, 3])),
    note('GNU', 3, Buffer.from([0xab, 0xcd])),
  ]);
  assert.equal(buildIdFromNotes(buf), 'abcd');
  const bad = Buffer.from(buf);
  bad.writeUInt32LE(1 << 30, 4); // first note claims a huge descriptor
  assert.equal(buildIdFromNotes(bad), undefined);
});

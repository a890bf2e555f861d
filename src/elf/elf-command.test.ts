/*
 * `suture elf` as a user runs it (bin/suture.js in a child process): readelf-like text, JSON, the
 * sympos lookup on the debug vmlinux, and a damaged file rendered as a compiler-style diagnostic.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { TINY_BUILD_ID, tinyObject } from './testing/tiny-object.js';

const bin = fileURLToPath(new URL('../../bin/suture.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const tiny = join(tmp, 'tiny.o');
writeFileSync(tiny, tinyObject());

function suture(...args: string[]) {
  return spawnSync(process.execPath, [bin, 'elf', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
}

test('default view: section headers and the build id note', () => {
  const r = suture(tiny);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\[ 2\] \.text +PROGBITS/);
  assert.match(r.stdout, /\.rela\.text +RELA .* +I +11 +2 +8/);
  assert.match(r.stdout, new RegExp(`GNU type 3 \\(build id\\): ${TINY_BUILD_ID}`));
});

test('--symbols --relocs --json is machine-readable', () => {
  const r = suture(tiny, '--symbols', '--relocs', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    symbols: Record<string, { name: string; bind: string; ndx: string }[]>;
    relocations: Record<string, { type: string; symbol: string; addend: string }[]>;
  };
  const syms = j.symbols['.symtab']!;
  assert.deepEqual(
    syms.find((s) => s.name === 'shared_common'),
    { ...syms.find((s) => s.name === 'shared_common'), bind: 'GLOBAL', ndx: 'COM' },
  );
  assert.equal(syms.find((s) => s.name === 'inline_fn')?.bind, 'WEAK');
  assert.deepEqual(
    j.relocations['.rela.text']!.map((r) => `${r.type} ${r.symbol} ${r.addend}`),
    [
      'R_X86_64_PC32 .data -0x4',
      'R_X86_64_PC32 message -0x4',
      'R_X86_64_PLT32 external_fn -0x4',
      'R_X86_64_PLT32 weak_fn -0x4',
    ],
  );
});

test('--lookup on the debug vmlinux shows FILE groups and sympos', async () => {
  const kernel = await ensureKernel(defaultRelease());
  const r = suture('--lookup', 'name_show', kernel.vmlinux);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /symbol\(s\) named name_show in vmlinux/);
  assert.match(r.stdout, /sympos 1 +name_show/);
  assert.match(r.stdout, /sympos 2 +name_show/);
  const none = suture('--lookup', 'no_such_symbol_anywhere', kernel.vmlinux);
  assert.equal(none.status, 1);
});

test('a damaged file is a diagnostic with code, field and offset, exit status 1', () => {
  const b = tinyObject();
  b.writeBigUInt64LE(BigInt(b.length + 64), 40);
  const bad = join(tmp, 'bad.o');
  writeFileSync(bad, b);
  const r = suture(bad);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.o:0x28 \(e_shoff\): error\[ELF-BAD-OFFSET\]/);
  assert.match(r.stderr, /hint: /);
});

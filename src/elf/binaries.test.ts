/*
 * The reader beyond relocatable kernel objects: shared objects and PIE executables of the system
 * (ET_DYN, .dynsym, GNU property notes with 8-byte alignment, dynamic relocations), the target kernel's
 * shipped modules (read and rewritten), and the section headers of the 600 MB debug vmlinux (ET_EXEC)
 * read piecewise by ElfFile — all checked against readelf -W.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { buildIdOf, readBuildId } from './build-id.js';
import { sectionFlagLetters, sectionTypeName } from './constants.js';
import { withElfFile } from './file.js';
import { readElfFile } from './reader.js';
import {
  compareWithReadelf,
  objdumpNormalized,
  parseSections,
  readelf,
  readelfAllNormalized,
} from './testing/readelf-compare.js';
import { writeElf } from './writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-bin-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('system shared objects and PIE executables (ET_DYN) agree with readelf -W', async () => {
  const files = ['/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libz.so.1'].filter(
    (f) => existsSync(f),
  );
  assert.ok(files.length >= 2);
  const bad: string[] = [];
  for (const f of files) {
    const obj = await readElfFile(f);
    assert.ok(obj.programHeaders.length > 0, `${f} has program headers`);
    bad.push(...compareWithReadelf(obj, f, 5));
    const id = readelf(['-n'], f).match(/Build ID: ([0-9a-f]+)/)?.[1];
    if (id) {
      assert.equal(buildIdOf(obj), id);
      assert.equal(await readBuildId(f), id);
    }
  }
  assert.deepEqual(bad, []);
});

test('shipped modules of the target kernel: read agrees with readelf, rewrite is identical', async () => {
  const kernel = await ensureKernel(defaultRelease());
  const mods: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (mods.length >= 25) return;
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ko')) mods.push(join(d, e.name));
    }
  };
  walk(join(kernel.modulesDir, 'kernel', 'fs'));
  assert.ok(mods.length >= 10);
  const bad: string[] = [];
  for (const m of mods) {
    const obj = await readElfFile(m);
    bad.push(...compareWithReadelf(obj, m, 3));
    const out = join(tmp, 'm.ko');
    writeFileSync(out, writeElf(obj));
    if (readelfAllNormalized(out) !== readelfAllNormalized(m))
      bad.push(`${m}: readelf -aW differs after rewrite`);
    if (objdumpNormalized(out) !== objdumpNormalized(m)) bad.push(`${m}: objdump -dr differs after rewrite`);
  }
  assert.deepEqual(bad, []);
});

test('debug vmlinux (ET_EXEC, 600 MB): section headers read piecewise agree with readelf -SW', async () => {
  const kernel = await ensureKernel(defaultRelease());
  const theirs = parseSections(readelf(['-SW'], kernel.vmlinux));
  await withElfFile(kernel.vmlinux, async (f) => {
    assert.equal(f.header.type, 2);
    assert.equal(f.sections.length, theirs.length);
    for (const h of f.sections.slice(1)) {
      const r = theirs[h.index]!;
      assert.deepEqual(
        [
          h.name,
          sectionTypeName(h.type),
          h.addr.toString(16).padStart(16, '0'),
          h.offset.toString(16).padStart(6, '0'),
          h.size.toString(16).padStart(6, '0'),
          sectionFlagLetters(h.flags),
          h.link,
          h.info,
          h.addralign,
        ],
        [r.name, r.type, r.addr, r.off, r.size, r.flg, r.lk, r.inf, r.al],
      );
    }
  });
  assert.equal(await readBuildId(kernel.vmlinux), kernel.buildId);
});

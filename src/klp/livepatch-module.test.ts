/*
 * The module stage on the blog's meminfo patch against the target kernel (kernel cache required):
 * the linked module holds the klp structures, its non-exported references are klp relocations with
 * the sympos the running kernel will count, and nothing is left for the ordinary loader to miss.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { indexSymbols } from '../elf/symbol-index.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { readExports } from './livepatch-module.js';
import { parseKlpSymbolName } from './relocations.js';
import { buildMeminfoLivepatch, type FixtureBuild } from './testing/livepatch-module.fixture.js';

let target: KernelTarget;
let built: FixtureBuild;
before(async () => {
  target = await ensureKernel(defaultRelease());
  built = await buildMeminfoLivepatch(target);
});
after(() => {
  if (built) rmSync(built.dir, { recursive: true, force: true });
});

test('meminfo: only meminfo_proc_show is carried, for the string change', () => {
  const changed = built.diff.functions.filter((f) => f.change !== 'same');
  assert.deepEqual(
    changed.map((f) => [f.name, f.change]),
    [['meminfo_proc_show', 'changed']],
  );
  assert.match(changed[0]!.reason ?? '', /VmallocChunk.*VMALLOCCHUNK/);
  assert.deepEqual(built.diff.refusals, []);
  assert.deepEqual(built.module.manifestObjects, [
    {
      name: 'vmlinux',
      functions: [{ name: 'meminfo_proc_show', sympos: 0, file: 'fs/proc/meminfo.c', change: 'changed' }],
    },
  ]);
});

test('meminfo: non-exported references are klp relocations against SHN_LIVEPATCH symbols', async () => {
  const ko = built.module.ko;
  const sections = execFileSync('readelf', ['-SW', ko], { encoding: 'utf8' });
  assert.match(
    sections,
    /\.klp\.rela\.vmlinux\.\.text\.meminfo_proc_show\s+RELA\s+\S+\s+\S+\s+\S+\s+\S+\s+AIo\s/,
  );
  const syms = execFileSync('readelf', ['-sW', ko], { encoding: 'utf8' }).split('\n');
  const klp = syms.filter((l) => / \.klp\.sym\./.test(l));
  const names = klp.map((l) => l.trim().split(/\s+/).pop()!);
  for (const expected of ['vmalloc_nr_pages', 'pcpu_nr_pages', 'vm_commit_limit', 'si_swapinfo']) {
    assert.ok(
      names.some((n) => parseKlpSymbolName(n)?.name === expected),
      `${expected} is a klp symbol: ${names.join(' ')}`,
    );
  }
  for (const l of klp) assert.match(l, /(LIVEPATCH|OS \[0xff20\])/, l);

  // every sympos is the one the kernel will count, and names a symbol kallsyms can see
  const idx = await indexSymbols(target.vmlinux);
  for (const n of names) {
    const k = parseKlpSymbolName(n)!;
    assert.equal(k.object, 'vmlinux');
    const candidates = idx.byName(k.name).filter((s) => s.kallsyms);
    assert.ok(candidates.length > 0, `${k.name} is in kallsyms`);
    if (k.sympos === 0) assert.equal(candidates.length, 1, `${k.name}: sympos 0 needs a unique name`);
    else assert.ok(candidates.some((s) => s.sympos === k.sympos));
  }

  // whatever is still undefined must be exported, or the module loader refuses the module
  const exports = readExports(target.moduleSymvers);
  const undef = syms
    .filter((l) => / UND /.test(l))
    .map((l) => l.trim().split(/\s+/).pop()!)
    .filter((n) => n && n !== 'UND');
  assert.ok(undef.length > 0);
  for (const n of undef) assert.ok(exports.has(n), `${n} is undefined but not exported`);

  const modinfo = execFileSync('readelf', ['-p', '.modinfo', ko], { encoding: 'utf8' });
  assert.match(modinfo, /livepatch=Y/);
  assert.match(modinfo, /license=GPL/);
  assert.match(modinfo, new RegExp(`vermagic=${target.release.replace(/\./g, '\\.')} `));
});

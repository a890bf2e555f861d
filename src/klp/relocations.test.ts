/*
 * klp relocations written into an object: what the kernel's livepatch core will look for, checked
 * with binutils' readelf on a gcc-built object.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readElfFile } from '../elf/index.js';
import { writeElf } from '../elf/writer.js';
import { convertKlpRelocations, klpSymbolName, parseKlpSymbolName } from './relocations.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-klp-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('klp symbol names round-trip and refuse what the kernel cannot parse', () => {
  const name = klpSymbolName({ object: 'vmlinux', name: 'show_val_kb', sympos: 2 });
  assert.equal(name, '.klp.sym.vmlinux.show_val_kb,2');
  assert.deepEqual(parseKlpSymbolName(name), { object: 'vmlinux', name: 'show_val_kb', sympos: 2 });
  assert.deepEqual(parseKlpSymbolName('.klp.sym.xfs.__func__.12,0'), {
    object: 'xfs',
    name: '__func__.12',
    sympos: 0,
  });
  assert.equal(parseKlpSymbolName('show_val_kb'), undefined);
  assert.throws(() => klpSymbolName({ object: 'a.b', name: 'x', sympos: 0 }), /KLP-BAD-OBJECT-NAME/);
  assert.throws(() => klpSymbolName({ object: 'vmlinux', name: 'a,b', sympos: 0 }), /KLP-BAD-SYMBOL-NAME/);
  assert.throws(() => klpSymbolName({ object: 'vmlinux', name: 'x', sympos: -1 }), /KLP-BAD-SYMPOS/);
});

test('relocations against .klp.sym symbols move to .klp.rela sections; the symbols get SHN_LIVEPATCH', async () => {
  const src = join(dir, 'p.c');
  writeFileSync(
    src,
    [
      'extern int local_helper(int) __asm__("\\".klp.sym.vmlinux.local_helper,2\\"");',
      'extern int mod_counter __asm__("\\".klp.sym.xfs.mod_counter,0\\"");',
      'extern int printk(const char *, ...);',
      'int patched(int x) { return local_helper(x) + mod_counter + printk("x"); }',
      '',
    ].join('\n'),
  );
  const obj = join(dir, 'p.o');
  execFileSync('gcc', ['-O2', '-fno-pic', '-mcmodel=kernel', '-ffunction-sections', '-c', src, '-o', obj]);
  const model = await readElfFile(obj);
  const result = convertKlpRelocations(model);
  const out = join(dir, 'p-klp.o');
  writeFileSync(out, writeElf(model));

  assert.deepEqual(result.sections.map((s) => s.name).sort(), [
    '.klp.rela.vmlinux..text.patched',
    '.klp.rela.xfs..text.patched',
  ]);
  const sections = execFileSync('readelf', ['-SW', out], { encoding: 'utf8' });
  for (const name of ['.klp.rela.vmlinux..text.patched', '.klp.rela.xfs..text.patched']) {
    const line = sections.split('\n').find((l) => l.includes(name));
    assert.ok(line, `${name} in readelf -S`);
    assert.match(line, /RELA/);
    const flags = /RELA\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)/.exec(line)?.[1] ?? '';
    assert.match(flags, /A/, 'SHF_ALLOC');
    assert.match(flags, /I/, 'SHF_INFO_LINK');
    assert.match(flags, /o/, 'SHF_RELA_LIVEPATCH (OS-specific)');
  }
  const syms = execFileSync('readelf', ['-sW', out], { encoding: 'utf8' });
  for (const name of ['.klp.sym.vmlinux.local_helper,2', '.klp.sym.xfs.mod_counter,0']) {
    const line = syms.split('\n').find((l) => l.endsWith(` ${name}`));
    assert.ok(line, `${name} in readelf -s`);
    assert.match(line, /GLOBAL/);
    assert.match(line, /(LIVEPATCH|OS \[0xff20\])/, 'st_shndx = SHN_LIVEPATCH');
  }
  assert.match(
    syms.split('\n').find((l) => l.endsWith(' printk')) ?? '',
    /UND/,
    'ordinary references stay undefined',
  );

  const relocs = execFileSync('readelf', ['-rW', out], { encoding: 'utf8' });
  const block = (name: string) =>
    relocs.split(/\n(?=Relocation section)/).find((b) => b.startsWith(`Relocation section '${name}'`)) ?? '';
  assert.match(block('.klp.rela.vmlinux..text.patched'), /\.klp\.sym\.vmlinux\.local_helper,2/);
  assert.doesNotMatch(block('.klp.rela.vmlinux..text.patched'), /xfs/, 'one object per klp section');
  assert.match(block('.klp.rela.xfs..text.patched'), /\.klp\.sym\.xfs\.mod_counter,0/);
  assert.match(block('.rela.text.patched'), /printk/);
  assert.doesNotMatch(block('.rela.text.patched'), /\.klp\.sym/);
});

test('the registration names every replaced function with its sympos, per klp object, and replace when asked', async () => {
  const { registrationSource } = await import('./livepatch-module.js');
  const src = registrationSource('demo', true, [
    {
      object: 'vmlinux',
      functions: [{ oldName: 'meminfo_proc_show', newSymbol: 'meminfo_proc_show', sympos: 0 }],
    },
    { object: 'tcp_dctcp', functions: [{ oldName: 'dctcp_init', newSymbol: 'dctcp_init', sympos: 2 }] },
  ]);
  assert.match(src, /\.old_name = "meminfo_proc_show", \.new_func = suture_new_0, \.old_sympos = 0/);
  assert.match(src, /extern void suture_new_0\(void\) __asm__\("meminfo_proc_show"\);/);
  assert.match(src, /\.old_name = "dctcp_init", \.new_func = suture_new_1, \.old_sympos = 2/);
  assert.match(src, /\{ \.name = NULL, \.funcs = suture_klp_funcs_0 \}/);
  assert.match(src, /\{ \.name = "tcp_dctcp", \.funcs = suture_klp_funcs_1 \}/);
  assert.match(src, /\.replace = true/);
  assert.match(src, /MODULE_INFO\(livepatch, "Y"\);/);
  assert.match(registrationSource('demo', false, []), /\.replace = false/);
});

/*
 * The vmlinux/module symbol index against binutils and against the kernel's own recipe for kallsyms.
 *
 * sympos is checked against an independent derivation: `nm -n vmlinux`, filtered exactly as
 * scripts/mksysmap and scripts/kallsyms.c (6.1, --all-symbols) filter it, walked in that order and
 * counted per name the way klp_find_callback counts. Every symbol's fields and FILE group are checked
 * against `readelf -sW`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { defaultRelease } from '../kernel/target.js';
import { STB, STT, symbolBindName, symbolTypeName } from './constants.js';
import { indexSymbols, type SymbolIndex } from './symbol-index.js';
import { readelf } from './testing/readelf-compare.js';

let target: KernelTarget;
let ix: SymbolIndex;

before(async () => {
  target = await ensureKernel(defaultRelease());
  ix = await indexSymbols(target.vmlinux);
});

/** kallsyms as scripts/link-vmlinux.sh builds it: nm -n | mksysmap | kallsyms --all-symbols. */
function kallsymsFromNm(vmlinux: string): { addr: bigint; name: string }[] {
  const r = spawnSync('nm', ['-n', vmlinux], { encoding: 'latin1', maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, r.stderr);
  const ignored = new Set([
    'kallsyms_addresses',
    'kallsyms_offsets',
    'kallsyms_relative_base',
    'kallsyms_num_syms',
    'kallsyms_names',
    'kallsyms_markers',
    'kallsyms_token_table',
    'kallsyms_token_index',
    'kallsyms_seqs_of_names',
    'L0',
  ]);
  const out: { addr: bigint; name: string }[] = [];
  for (const line of r.stdout.split('\n')) {
    const [a, t, n] = line.split(' ');
    if (!a || !t || !n) continue;
    if ('aNUw'.includes(t)) continue; // mksysmap
    if (['$', '.L', '__crc_', '__kstrtab_', '__kstrtabns_'].some((p) => n.startsWith(p))) continue;
    if (
      t === 'A' ||
      t === 'n' ||
      ignored.has(n) ||
      n.startsWith('__efistub_') ||
      n.startsWith('__kcfi_typeid_')
    )
      continue; // kallsyms.c
    out.push({ addr: BigInt(`0x${a}`), name: n });
  }
  return out;
}

test('sympos agrees with the kernel kallsyms order derived from nm -n (KALLSYMS_ALL: data symbols count)', () => {
  const kallsyms = kallsymsFromNm(target.vmlinux);
  const ours = ix.symbols.filter((s) => s.kallsyms);
  assert.equal(ours.length, kallsyms.length, 'same set of kallsyms symbols');
  const perName = new Map<string, bigint[]>();
  for (const k of kallsyms) {
    const a = perName.get(k.name) ?? [];
    a.push(k.addr);
    perName.set(k.name, a);
  }
  let duplicated = 0;
  const bad: string[] = [];
  for (const [name, addrs] of perName) {
    const mine = ix.byName(name).filter((s) => s.kallsyms);
    if (mine.length !== addrs.length) {
      bad.push(`${name}: ${mine.length} vs ${addrs.length}`);
      continue;
    }
    if (addrs.length > 1) duplicated++;
    addrs.forEach((addr, i) => {
      const want = addrs.length === 1 ? 0 : i + 1;
      if (mine[i]!.value !== addr || mine[i]!.sympos !== want)
        bad.push(`${name}#${i + 1}: ours ${mine[i]!.value.toString(16)} pos ${mine[i]!.sympos}`);
    });
  }
  assert.deepEqual(bad.slice(0, 10), []);
  assert.ok(duplicated > 100, `many duplicated names (${duplicated}) exercise sympos`);
  // a data symbol with a duplicated name has a sympos too (CONFIG_KALLSYMS_ALL=y)
  assert.ok(ix.symbols.some((s) => s.kallsyms && s.type === STT.OBJECT && s.sympos > 0));
});

test('every symbol and its FILE group agree with readelf -sW', () => {
  const text = readelf(['-sW'], target.vmlinux);
  let file: string | undefined;
  let checked = 0;
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+): ([0-9a-f]{16})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s?(.*)$/.exec(line);
    if (!m || m[1] === '0') continue;
    const i = Number(m[1]);
    const s = ix.symbols[i - 1];
    const [type, bind, name] = [m[4]!, m[5]!, m[8]!];
    if (type === 'FILE') file = name;
    else if (bind !== 'LOCAL') file = undefined;
    if (!s) {
      bad.push(`symbol ${i} missing`);
      continue;
    }
    checked++;
    const groupFile = type === 'FILE' ? name : s.file?.basename;
    if (
      s.value.toString(16).padStart(16, '0') !== m[2] ||
      BigInt(s.size) !== BigInt(m[3]!) ||
      symbolTypeName(s.type) !== type ||
      symbolBindName(s.bind) !== bind ||
      (s.name !== name && !(s.type === STT.SECTION && s.name === '')) ||
      (type !== 'FILE' && groupFile !== file)
    )
      bad.push(`${i}: ${line.trim()} / ours ${s.value.toString(16)} ${s.size} ${s.name} file ${groupFile}`);
  }
  assert.equal(checked, ix.symbols.length);
  assert.deepEqual(bad.slice(0, 10), []);
});

test('lookups a livepatch build needs: locals by file, globals, shared basenames', () => {
  const show = ix.lookupLocal('cmdline.c', 'cmdline_proc_show');
  assert.equal(show.length, 1);
  assert.equal(show[0]!.type, STT.FUNC);
  assert.equal(show[0]!.sympos, 0, 'unique in vmlinux');
  const meminfo = ix.localsInFile('meminfo.c');
  assert.ok(meminfo.length >= 1);
  assert.ok(meminfo.some((g) => g.symbols.some((s) => s.name === 'meminfo_proc_show' && s.size > 0)));
  // several translation units are called core.c: each is its own group, in symtab order
  const cores = ix.localsInFile('core.c');
  assert.ok(cores.length > 5);
  assert.deepEqual(
    cores.map((g) => g.ordinal),
    cores.map((_, i) => i),
  );
  assert.ok(cores.every((g, i) => i === 0 || g.index > cores[i - 1]!.index));
  // a duplicated local: positions 1..n in address order, each findable by file
  const dup = ix.byName('name_show').filter((s) => s.kallsyms);
  assert.ok(dup.length > 1);
  assert.deepEqual(
    dup.map((s) => s.sympos),
    dup.map((_, i) => i + 1),
  );
  assert.ok(dup.every((s, i) => i === 0 || s.value > dup[i - 1]!.value));
  const g = ix.global('si_meminfo');
  assert.equal(g?.bind, STB.GLOBAL);
  assert.equal(g?.type, STT.FUNC);
  assert.equal(ix.global('cmdline_proc_show'), undefined, 'a local is not a global');
  assert.equal(ix.object, 'vmlinux');
});

test('module index: object name from .modinfo, sympos in module symtab order over core symbols', async (t) => {
  const dir = join(target.debugModulesDir, 'kernel', 'fs', 'fat');
  const candidates = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ko')) : [];
  if (candidates.length === 0) return t.skip(`no debug modules under ${dir}`);
  const path = join(dir, candidates.includes('vfat.ko') ? 'vfat.ko' : candidates[0]!);
  const m = await indexSymbols(path);
  assert.equal(m.object, candidates.includes('vfat.ko') ? 'vfat' : m.object);
  assert.equal(m.kind, 'module');
  // is_core_symbol: defined, named, in an allocated non-.init section
  const secs = readelf(['-SW'], path);
  const alloc = new Map<number, { name: string; flags: string }>();
  for (const line of secs.split('\n')) {
    const x = /^\s+\[\s*(\d+)\] (\S+)\s+\S+\s+[0-9a-f]{16} [0-9a-f]+ [0-9a-f]+ [0-9a-f]{2} +(\S*) /.exec(
      line,
    );
    if (x) alloc.set(Number(x[1]), { name: x[2]!, flags: x[3]! });
  }
  for (const s of m.symbols) {
    const sec = alloc.get(s.shndx);
    const core =
      s.name !== '' && s.shndx !== 0 && !!sec && sec.flags.includes('A') && !sec.name.startsWith('.init');
    assert.equal(s.kallsyms, core, `${s.name} in ${sec?.name}`);
  }
  for (const s of m.symbols.filter((x) => x.kallsyms)) {
    const same = m.symbols.filter((x) => x.kallsyms && x.name === s.name);
    assert.equal(s.sympos, same.length === 1 ? 0 : same.indexOf(s) + 1);
  }
});

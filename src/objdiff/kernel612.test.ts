/*
 * objdiff on objects of a 6.12 IBT kernel (6.12.117+deb12-cloud-amd64): compiled with the tree's own
 * kbuild flags (-fcf-protection=branch, -fpatchable-function-entry=16,16, return thunks) and objtool run
 * as kbuild runs it on vmlinux.o (`__pfx_` symbols, `.return_sites`, `.call_sites`, `.ibt_endbr_seal`,
 * ORC). The diff object is checked against readelf and objdump.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readElfFile } from '../elf/index.js';
import { cacheRoot } from '../kernel/cache.js';
import { ensureKernel } from '../kernel/fetch.js';
import { targetTableSizes } from './kernel-tables.js';
import { diffObjects, type ObjectDiff } from './objdiff.js';
import { targetCode } from './target-code.js';
import { compileKernelC, type KernelCompiler, kernelCompiler } from './testing/kernel-objects.js';
import { writeDiffObject } from './write.js';

const RELEASE = '6.12.117+deb12-cloud-amd64';
let k: KernelCompiler;
let target: Awaited<ReturnType<typeof ensureKernel>>;

before(async () => {
  target = await ensureKernel(RELEASE);
  k = kernelCompiler(target.sourceTree, target.config);
});
after(() => rmSync(k.dir, { recursive: true, force: true }));

const record = (d: ObjectDiff, name: string) => d.functions.find((f) => f.name === name);

/** `readelf -sW` rows: name → { value, size, type, bind, ndx } */
function symbols(
  obj: string,
): Map<string, { value: number; size: number; type: string; bind: string; ndx: string }> {
  const out = new Map();
  for (const line of execFileSync('readelf', ['-sW', obj], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+(\d+)\s+(\w+)\s+(\w+)\s+\w+\s+(\w+)\s+(\S+)$/.exec(line);
    if (m)
      out.set(m[6], {
        value: Number.parseInt(m[1]!, 16),
        size: Number(m[2]),
        type: m[3],
        bind: m[4],
        ndx: m[5],
      });
  }
  return out;
}

/** The relocations of one section as `objdump -r` prints them: `offset type target`. */
function relocs(obj: string, section: string): string[] {
  const names = execFileSync('readelf', ['-SW', obj], { encoding: 'utf8' });
  if (!names.includes(` ${section} `)) return [];
  const text = execFileSync('objdump', ['-r', '-j', section, obj], { encoding: 'utf8' });
  return text
    .split('\n')
    .filter((l) => /^[0-9a-f]{16} /.test(l))
    .map((l) => l.trim().split(/\s+/).join(' '));
}

const SOURCE = (v: number) => `
int keep(int x) { return x * 7 + 3; }
noinline int fix(int x) { return x + ${v}; }
int use(int x) { return fix(x) - keep(x); }
`;

describe('objdiff on 6.12 (IBT, call padding, prefix symbols)', () => {
  test('a function and its __pfx_ prefix are one unit: no NO-FUNCTION-SECTIONS, the prefix travels with it', async () => {
    const o = await compileKernelC(k, SOURCE(1));
    const p = await compileKernelC(k, SOURCE(2));
    const ps = symbols(p);
    assert.equal(ps.get('__pfx_fix')?.size, 16, 'objtool made the prefix symbol');
    assert.equal(ps.get('fix')?.value, 16, 'the function starts after 16 bytes of padding');
    const d = await diffObjects(o, p);
    assert.deepEqual(
      d.refusals.map((r) => r.code),
      [],
    );
    assert.equal(record(d, 'fix')?.change, 'changed');
    assert.equal(record(d, 'fix')?.traceable, true, 'the __fentry__ call after endbr64 is the hook');
    assert.equal(record(d, '__pfx_fix')?.parent, 'fix');
    assert.equal(record(d, '__pfx_fix')?.included, true);
    assert.equal(record(d, 'keep')?.included, false);
    assert.ok(!d.removedFunctions.some((n) => n.startsWith('__pfx_')));

    const out = `${p}.diff.o`;
    await writeDiffObject(d, out);
    const ds = symbols(out);
    assert.equal(ds.get('fix')?.bind, 'GLOBAL');
    assert.equal(ds.get('fix')?.value, 16);
    assert.equal(ds.get('__pfx_fix')?.bind, 'LOCAL', 'the prefix stays private');
    assert.equal(ds.get('__pfx_fix')?.value, 0);
    assert.equal(ds.get('__pfx_fix')?.ndx, ds.get('fix')?.ndx, 'in the function`s own section');
    assert.ok(!ds.has('keep') && !ds.has('__pfx_keep'));
    const dis = execFileSync('objdump', ['-d', '-j', '.text.fix', out], { encoding: 'utf8' });
    assert.match(dis, /<fix>:\n\s+10:\s+f3 0f 1e fa\s+endbr64/);
    // return sites: exactly those of fix, one per return-thunk jump in its code
    const thunks = relocs(out, '.text.fix').filter((r) => /__x86_return_thunk-0x0*4$/.test(r));
    const sites = relocs(out, '.return_sites');
    assert.ok(thunks.length > 0);
    assert.equal(sites.length, thunks.length);
    for (const r of sites) assert.match(r, / R_X86_64_PC32 \.text\.fix\+0x[0-9a-f]+$/);
  });

  test('the VmallocChunk fix of meminfo.c: table entries kept for exactly the carried function, 6.12 sizes', async () => {
    const text = readFileSync(join(target.sourceTree, 'fs/proc/meminfo.c'), 'utf8');
    const o = await compileKernelC(k, text);
    const p = await compileKernelC(k, text.replace('"VmallocChunk:   "', '"VMALLOCCHUNK:   "'));
    // 6.1's sizes split 6.12's 14-byte alt_instr entries wrongly: refused, never mis-split
    const wrong = await diffObjects(o, p);
    assert.ok(
      wrong.refusals.some(
        (r) => r.code === 'OBJDIFF-TABLE-LAYOUT' && r.location?.section === '.altinstructions',
      ),
    );
    const tables = targetTableSizes(target, cacheRoot());
    assert.equal(tables['.altinstructions'], 14);
    const d = await diffObjects(o, p, { tables, target: targetCode(target.config) });
    assert.deepEqual(
      d.refusals.map((r) => r.code),
      [],
    );
    assert.deepEqual(
      d.functions
        .filter((f) => f.included)
        .map((f) => f.name)
        .sort(),
      ['__pfx_meminfo_proc_show', 'meminfo_proc_show'],
    );
    const out = `${p}.diff.o`;
    await writeDiffObject(d, out);
    const fn = '.text.meminfo_proc_show';
    for (const table of [
      '.altinstructions',
      '.return_sites',
      '.call_sites',
      '.orc_unwind_ip',
      '__mcount_loc',
      '.ibt_endbr_seal',
    ]) {
      const size = tables[table]!;
      // the entries' first fields, as objdump shows them: the patched object's that hit the function, in order
      const anchors = (obj: string) =>
        relocs(obj, table)
          .filter((r) => Number.parseInt(r.split(' ')[0]!, 16) % size === 0)
          .map((r) => r.split(' ')[2]!)
          .filter((t) => t.startsWith(`${fn}+`) || t === fn);
      const want = anchors(p);
      const got = anchors(out);
      assert.deepEqual(got, want, `${table}: the entries of ${fn}, in order`);
      const all = relocs(out, table).filter((r) => Number.parseInt(r.split(' ')[0]!, 16) % size === 0);
      assert.equal(all.length, want.length, `${table}: no entry of another function`);
      if (table !== '.ibt_endbr_seal') assert.ok(want.length > 0, `${table} has entries for ${fn}`);
    }
    // .orc_unwind parallels .orc_unwind_ip: the same 6-byte entries as the patched object's, in order
    const [po, dout] = [await readElfFile(p), await readElfFile(out)];
    const ipRels = relocs(p, '.orc_unwind_ip');
    const orc = po.section('.orc_unwind')!.data;
    const wantOrc = Buffer.concat(
      ipRels
        .map((r, idx) => [r, idx] as const)
        .filter(([r]) => r.split(' ')[2]!.startsWith(`${fn}+`) || r.split(' ')[2] === fn)
        .map(([, idx]) => Buffer.from(orc.subarray(idx * 6, idx * 6 + 6))),
    );
    assert.ok(wantOrc.length > 0);
    assert.deepEqual(Buffer.from(dout.section('.orc_unwind')!.data), wantOrc);
    const ds = symbols(out);
    assert.equal(ds.get('__pfx_meminfo_proc_show')?.bind, 'LOCAL');
    assert.equal(ds.get('meminfo_proc_show')?.bind, 'GLOBAL');
  });
});

describe('static checks of carried code on an IBT, return-thunk target', () => {
  test('an object built without -fcf-protection=branch or return thunks is refused: KLP-IBT-ENDBR, KLP-RETURN-THUNK', async () => {
    const target612 = targetCode(target.config);
    assert.deepEqual(target612, { ibt: true, rethunk: true, returnThunk: '__x86_return_thunk' });
    const flags = ['-fcf-protection=none', '-mfunction-return=keep'];
    const o = await compileKernelC(k, SOURCE(1), { extraFlags: flags });
    const p = await compileKernelC(k, SOURCE(2), { extraFlags: flags });
    const d = await diffObjects(o, p, { target: target612 });
    const codes = d.refusals.map((r) => `${r.code} ${r.location?.symbol}`).sort();
    assert.deepEqual(codes, ['KLP-IBT-ENDBR fix', 'KLP-RETURN-THUNK fix']);
    // the same pair on a kernel without IBT or return thunks is fine
    assert.deepEqual(
      (await diffObjects(o, p, { target: { ...target612, ibt: false, rethunk: false } })).refusals,
      [],
    );
  });

  test('objects built with the kernel`s own flags pass both checks', async () => {
    const o = await compileKernelC(k, SOURCE(1));
    const p = await compileKernelC(k, SOURCE(2));
    const d = await diffObjects(o, p, { target: targetCode(target.config) });
    assert.deepEqual(d.refusals, []);
  });
});

describe('objects built without our #line directives', () => {
  const warn = (blank: string) => `#include <linux/bug.h>
int keep(int x);
${blank}int keep(int x) { WARN_ON(x > 100); return x * 7 + 3; }
int fix(int x);
int fix(int x) { BUG_ON(x < 0); return x + 1; }
`;
  test('a change that only moves WARN/BUG line numbers is no change: the bug table entries differ, the code not', async () => {
    const o = await compileKernelC(k, warn(''));
    const p = await compileKernelC(k, warn('\n\n\n'));
    // the line numbers did move: the patched bug table says so (struct bug_entry.line, at byte 8)
    const lines = async (obj: string) => {
      const t = (await readElfFile(obj)).section('__bug_table')!.data;
      return [0, 12].map((at) => t[at + 8]! | (t[at + 9]! << 8));
    };
    const [lo, lp] = [await lines(o), await lines(p)];
    assert.deepEqual(
      lp,
      lo.map((l) => l + 3),
    );
    const d = await diffObjects(o, p, { tables: targetTableSizes(target, cacheRoot()) });
    assert.deepEqual(
      d.functions.filter((f) => f.change !== 'same').map((f) => f.name),
      [],
    );
  });
});

/*
 * Jump labels and static calls of patched code on the real target kernel (no VM): a module's
 * tracepoint left inert with a warning (its `__jump_table` and `.static_call_sites` entries gone from
 * the module, the code reading the tracepoint and calling its trampoline kept; module-keys.vm.test.ts
 * shows the event silent), refused under `strict`; a module's other
 * static key and static call refused, each with its replacement, and the static call rewritten as the
 * hint says builds; vmlinux's tracepoint and static key carried in the module's own tables.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ElfObject } from '../elf/model.js';
import { readElf } from '../elf/reader.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { diffObjectOf } from '../objdiff/write.js';
import { BuildRefused, type BuildResult, buildLivepatch } from '../pipeline/pipeline.js';
import { earlyTableReferences, inertTracepointEntries, leaveTracepointsInert } from './module-keys.js';
import { type KeysPatch, writeKeysPatch } from './testing/module-keys.fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-module-keys-test-'));
let target: KernelTarget;
before(async () => {
  target = await ensureKernel(defaultRelease());
});
after(() => rmSync(dir, { recursive: true, force: true }));

function build(name: KeysPatch, opts: { strict?: boolean; checkOnly?: boolean } = {}) {
  return buildLivepatch({
    diffPath: writeKeysPatch(target, dir, name),
    release: target.release,
    target,
    name: name.toLowerCase(),
    outDir: join(dir, 'out'),
    ...opts,
  });
}

async function refusalOf(name: KeysPatch, opts: { strict?: boolean } = {}) {
  try {
    await build(name, { ...opts, checkOnly: true });
  } catch (e) {
    if (e instanceof BuildRefused) return e.refusals;
    throw e;
  }
  assert.fail(`${name} was not refused`);
}

/** `section: symbol` for every relocation of the sections applying to `table`. */
function tableRelocations(ko: ElfObject, table: string): string[] {
  const out: string[] = [];
  for (const s of ko.sections)
    if (s.infoSection?.name === table)
      for (const r of s.relocations ?? []) out.push(`${s.name}: ${r.symbol?.name ?? ''}`);
  return out;
}

let kyber: BuildResult | undefined;

test("a module's tracepoint in the patched function is left inert, with a warning naming it and the function", async () => {
  const r = await build('kyber');
  kyber = r;
  assert.deepEqual(
    r.warnings.map((w) => [w.code, w.location?.symbol]),
    [['KLP-MODULE-TRACEPOINT-INERT', 'calculate_percentile']],
  );
  assert.match(r.warnings[0]!.message, /tracepoint `kyber_latency` of module kyber_iosched is inert/);
  const ko = readElf(readFileSync(r.ko!), r.ko!);
  // nothing keyed on kyber_iosched in the tables the module loader sets up
  const early = [...tableRelocations(ko, '__jump_table'), ...tableRelocations(ko, '.static_call_sites')];
  assert.deepEqual(
    early.filter((x) => x.includes('kyber')),
    [],
    early.join('\n'),
  );
  assert.ok(!ko.section('.klp.rela.kyber_iosched.__jump_table'));
  // the vmlinux static call of the function (preempt_schedule_notrace) is still carried
  assert.ok(
    early.some((x) => /preempt_schedule_notrace/.test(x)),
    early.join('\n'),
  );
  // the code still reads the tracepoint and calls its trampoline, resolved when kyber_iosched loads
  const text = tableRelocations(ko, '.text.calculate_percentile').filter((x) =>
    x.startsWith('.klp.rela.kyber_iosched.'),
  );
  assert.ok(
    text.some((x) => x.endsWith('.klp.sym.kyber_iosched.__SCT__tp_func_kyber_latency,0')),
    text.join('\n'),
  );
  assert.ok(
    text.some((x) => /__tracepoint_kyber_latency,0$/.test(x)),
    text.join('\n'),
  );
});

test('the inert entries are the jump entry on a no-op site and its static call; a site that is not a no-op stays a refusal', () => {
  assert.ok(kyber, 'the kyber build ran');
  const diff = kyber.units[0]!.diff!;
  // the diff object as written before the tracepoint was left inert (its references are named already)
  const obj = diffObjectOf(diff, { exportFunctions: true });
  const refs = earlyTableReferences(obj, diff.tables);
  const module = refs.filter((r) => r.object !== 'vmlinux');
  assert.deepEqual(
    module.map((r) => [r.table, r.kind, r.tracepoint, r.function, r.notInert]),
    [
      ['__jump_table', 'tracepoint', 'kyber_latency', 'calculate_percentile', undefined],
      ['.static_call_sites', 'tracepoint', 'kyber_latency', 'calculate_percentile', undefined],
    ],
  );
  assert.deepEqual(inertTracepointEntries(refs), module);
  // the same entries on a site that jumps: nothing can be left out, KLP-MODULE-KEY sees both
  const jump = refs.find((r) => r.table === '__jump_table')!;
  const codeRel = obj
    .relocationsFor(jump.section)
    .flatMap((x) => x.relocations ?? [])
    .find((x) => Number(x.offset) === jump.entry! * diff.tables.__jump_table!)!;
  const text = codeRel.symbol!.section!;
  const at = Number(codeRel.symbol!.value + codeRel.addend);
  text.data = new Uint8Array(text.data);
  text.data.set([0xeb, 0x00], at);
  const jumping = earlyTableReferences(obj, diff.tables);
  assert.match(jumping.find((r) => r.table === '__jump_table')!.notInert ?? '', /is not a no-op/);
  assert.deepEqual(inertTracepointEntries(jumping), []);
  const { inert, remaining } = leaveTracepointsInert(obj, diff.tables, false);
  assert.deepEqual(inert, []);
  assert.equal(remaining.filter((r) => r.object !== 'vmlinux').length, 2);
});

test('left inert, the two entries are gone and the vmlinux ones packed in their place', () => {
  const diff = kyber!.units[0]!.diff!;
  const obj = diffObjectOf(diff, { exportFunctions: true });
  const before = obj.section('.static_call_sites')!.data.length;
  const { inert, remaining } = leaveTracepointsInert(obj, diff.tables, false);
  assert.equal(inert.length, 2);
  assert.deepEqual(
    remaining.filter((r) => r.object !== 'vmlinux'),
    [],
  );
  // calculate_percentile's only jump entry was the tracepoint's: the table is gone
  assert.equal(obj.section('__jump_table'), undefined);
  const sites = obj.section('.static_call_sites')!;
  assert.equal(sites.data.length, before - diff.tables['.static_call_sites']!);
  const rels = obj.relocationsFor(sites).flatMap((x) => x.relocations ?? []);
  assert.deepEqual(
    rels.map((r) => Number(r.offset)),
    [...Array(sites.data.length / 4).keys()].map((i) => i * 4),
    'every field of the packed sites still has its relocation',
  );
  assert.ok(rels.every((r) => !/kyber/.test(r.symbol?.name ?? '')));
});

test('--strict refuses the tracepoint of a module with KLP-MODULE-KEY, naming it and the function', async () => {
  const refusals = await refusalOf('kyber', { strict: true });
  assert.deepEqual(
    refusals.map((d) => d.code),
    ['KLP-MODULE-KEY'],
  );
  assert.match(
    refusals[0]!.message,
    /tracepoint `kyber_latency` of module kyber_iosched .*calculate_percentile/,
  );
  assert.match(refusals[0]!.hint ?? '', /without --strict/);
});

test("a module's other static key is refused, with static_key_enabled() as the replacement", async () => {
  const [d] = await refusalOf('nftables');
  assert.equal(d?.code, 'KLP-MODULE-KEY');
  assert.match(
    d!.message,
    /static branch in the patched code \(in nft_do_chain\) tests `nft_(trace|counters)_enabled` of module nf_tables/,
  );
  assert.match(d!.hint ?? '', /static_key_enabled\(&nft_(trace|counters)_enabled\)/);
});

test("a module's static call is refused with KLP_STATIC_CALL as the replacement, which then builds", async () => {
  const [d] = await refusalOf('aesni');
  assert.equal(d?.code, 'KLP-MODULE-KEY');
  assert.match(
    d!.message,
    /static call in the patched code \(in ctr_crypt\) goes through `__SCK__aesni_ctr_enc_tfm` of module aesni_intel/,
  );
  assert.match(d!.hint ?? '', /KLP_STATIC_CALL\(aesni_ctr_enc_tfm\)/);
  const ok = await build('aesniPlainCall', { checkOnly: true });
  assert.ok(
    ok.summary.some((l) => /changed function: ctr_crypt/.test(l)),
    ok.summary.join('\n'),
  );
  assert.deepEqual(ok.warnings, []);
});

test("a new use of vmlinux's tracepoint and static key is carried in the module's own tables", async () => {
  const r = await build('meminfo');
  assert.deepEqual(r.warnings, []);
  const ko = readElf(readFileSync(r.ko!), r.ko!);
  const jumps = tableRelocations(ko, '__jump_table');
  for (const key of ['__tracepoint_sched_kthread_stop_ret', 'sched_schedstats'])
    assert.ok(
      jumps.includes(`.klp.rela.vmlinux.__jump_table: .klp.sym.vmlinux.${key},0`),
      `${key}:\n${jumps.join('\n')}`,
    );
  assert.ok(
    tableRelocations(ko, '.static_call_sites').includes(
      '.klp.rela.vmlinux..static_call_sites: .klp.sym.vmlinux.__SCK__tp_func_sched_kthread_stop_ret,0',
    ),
  );
});

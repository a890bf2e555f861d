/*
 * KLP-MODULE-KEY and KLP-MODULE-TRACEPOINT-INERT on references as klp/module-keys.ts reports them: the
 * kinds told apart by table and key name, vmlinux keys passed, one warning per tracepoint and function.
 * (../../klp/module-keys.test.ts has the real kernel's objects.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EarlyTableReference, earlyKeyKind, moduleKey } from './module-key.js';
import { moduleTracepointInert } from './module-tracepoint-inert.js';

function ref(table: string, object: string, name: string, fn = 'f'): EarlyTableReference {
  return { table, object, name, function: fn, ...earlyKeyKind(table, name) };
}

test('the kind of an early table entry comes from its table and its key', () => {
  assert.deepEqual(earlyKeyKind('__jump_table', '__tracepoint_kyber_adjust'), {
    kind: 'tracepoint',
    tracepoint: 'kyber_adjust',
  });
  assert.deepEqual(earlyKeyKind('.static_call_sites', '__SCK__tp_func_kyber_adjust'), {
    kind: 'tracepoint',
    tracepoint: 'kyber_adjust',
  });
  assert.deepEqual(earlyKeyKind('.static_call_sites', '__SCT__tp_func_kyber_adjust'), {
    kind: 'tracepoint',
    tracepoint: 'kyber_adjust',
  });
  assert.deepEqual(earlyKeyKind('__jump_table', 'nft_trace_enabled'), { kind: 'static-key' });
  // a static call named like a tracepoint key is still a static call
  assert.deepEqual(earlyKeyKind('.static_call_sites', '__tracepoint_x'), { kind: 'static-call' });
  assert.deepEqual(earlyKeyKind('.static_call_sites', '__SCK__aesni_ctr_enc_tfm'), { kind: 'static-call' });
  assert.deepEqual(earlyKeyKind('.altinstr_replacement', 'foo'), { kind: 'alternative' });
});

test('vmlinux keys pass; the first module key is refused with the replacement of its kind', () => {
  assert.deepEqual(moduleKey.check('a.c', [ref('__jump_table', 'vmlinux', 'sched_schedstats')]), []);
  const [key] = moduleKey.check('a.c', [
    ref('__jump_table', 'vmlinux', 'sched_schedstats'),
    ref('__jump_table', 'nf_tables', 'nft_trace_enabled', 'nft_do_chain'),
  ]);
  assert.equal(key?.code, 'KLP-MODULE-KEY');
  assert.match(
    key!.message,
    /static branch .*\(in nft_do_chain\) tests `nft_trace_enabled` of module nf_tables/,
  );
  assert.match(key!.hint!, /static_key_enabled\(&nft_trace_enabled\)/);
  const [call] = moduleKey.check('a.c', [
    ref('.static_call_sites', 'aesni_intel', '__SCK__aesni_ctr_enc_tfm'),
  ]);
  assert.match(call!.hint!, /KLP_STATIC_CALL\(aesni_ctr_enc_tfm\)/);
  const [tp] = moduleKey.check(
    'a.c',
    [ref('__jump_table', 'kyber_iosched', '__tracepoint_kyber_adjust')],
    true,
  );
  assert.match(tp!.message, /tracepoint `kyber_adjust` of module kyber_iosched/);
  assert.match(tp!.hint!, /without --strict/);
  const [alt] = moduleKey.check('a.c', [ref('.altinstr_replacement', 'kvm', 'kvm_x')]);
  assert.match(alt!.message, /CPU alternative/);
});

test('one inert-tracepoint warning per tracepoint and function, however many entries', () => {
  const d = moduleTracepointInert.check('block/kyber-iosched.c', [
    ref('__jump_table', 'kyber_iosched', '__tracepoint_kyber_throttled', 'kyber_dispatch_cur_domain'),
    ref('__jump_table', 'kyber_iosched', '__tracepoint_kyber_throttled', 'kyber_dispatch_cur_domain'),
    ref('.static_call_sites', 'kyber_iosched', '__SCK__tp_func_kyber_throttled', 'kyber_dispatch_cur_domain'),
    ref('__jump_table', 'kyber_iosched', '__tracepoint_kyber_adjust', 'kyber_timer_fn'),
  ]);
  assert.deepEqual(
    d.map((x) => [x.severity, x.code, x.location?.symbol]),
    [
      ['warning', 'KLP-MODULE-TRACEPOINT-INERT', 'kyber_dispatch_cur_domain'],
      ['warning', 'KLP-MODULE-TRACEPOINT-INERT', 'kyber_timer_fn'],
    ],
  );
  assert.match(
    d[1]!.message,
    /tracepoint `kyber_adjust` of module kyber_iosched is inert in the patched kyber_timer_fn/,
  );
});

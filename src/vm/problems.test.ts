// Oops/panic/BUG/WARNING detection and module refusal reasons, from console text as the kernel prints it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findModuleRefusals, findProblems, worstProblem } from './problems.js';

const OOPS = `[    2.100000] livepatch: 'x': patching complete
[    3.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    3.000002] #PF: supervisor write access in kernel mode
[    3.000003] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    3.000004] CPU: 0 PID: 97 Comm: sh Tainted: G           OE K    6.1.0-53-cloud-amd64 #1
[    3.000005] RIP: 0010:bad_func+0x5/0x10 [bad]
[    3.000006] Call Trace:
[    3.000007]  <TASK>
[    3.000008]  do_one_initcall+0x41/0x200
[    3.000009]  </TASK>
[    3.000010] ---[ end trace 0000000000000000 ]---
[    3.100000] ordinary line after
`;

describe('kernel problem detection', () => {
  it('finds a BUG/Oops with its trace up to the end marker', () => {
    const ps = findProblems(OOPS);
    assert.deepEqual(
      ps.map((p) => p.kind),
      ['bug', 'oops'],
    );
    const oops = ps[1]!;
    assert.equal(oops.title, 'Oops: 0002 [#1] PREEMPT SMP NOPTI');
    assert.match(oops.trace, /bad_func\+0x5/);
    assert.match(oops.trace, /---\[ end trace/);
    assert.doesNotMatch(oops.trace, /ordinary line after/);
    assert.equal(worstProblem(ps)?.kind, 'bug');
  });

  it('ranks a panic above an oops, a WARNING below', () => {
    const text = `${OOPS}[    4.0] WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2\n[    4.1] Kernel panic - not syncing: Fatal exception\n`;
    assert.equal(worstProblem(findProblems(text))?.kind, 'panic');
    assert.equal(worstProblem(findProblems('[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:2 g\n'))?.kind, 'warning');
  });

  it('recognises any die() header as an oops', () => {
    const ps = findProblems(
      '[   5.0] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n[   5.1] RIP: 0010:f+0x0/0x1\n',
    );
    assert.deepEqual(
      ps.map((p) => [p.kind, p.title]),
      [['oops', 'invalid opcode: 0000 [#1] PREEMPT SMP NOPTI']],
    );
  });

  it('finds nothing in a clean boot', () => {
    assert.deepEqual(
      findProblems('[    0.000000] Linux version 6.1.0\n[    1.0] Run /init as init process\n'),
      [],
    );
  });
});

describe('module refusals', () => {
  it('reads the kernel reason for a wrong-kernel module, once', () => {
    const log = [
      "[    1.5] lp: version magic '5.10.0-30-amd64 SMP mod_unload modversions ' should be '6.1.0-53-cloud-amd64 SMP preempt mod_unload modversions '",
      "[    1.6] lp: version magic '5.10.0-30-amd64 SMP mod_unload modversions ' should be '6.1.0-53-cloud-amd64 SMP preempt mod_unload modversions '",
      '[    1.7] other: disagrees about version of symbol module_layout',
      '[    1.8] third: Unknown symbol klp_enable_patch (err -2)',
      '[    1.9] fine: loading out-of-tree module taints kernel.',
    ].join('\n');
    assert.deepEqual(findModuleRefusals(log), [
      {
        module: 'lp',
        reason:
          "version magic '5.10.0-30-amd64 SMP mod_unload modversions ' should be '6.1.0-53-cloud-amd64 SMP preempt mod_unload modversions '",
      },
      { module: 'other', reason: 'disagrees about version of symbol module_layout' },
      { module: 'third', reason: 'Unknown symbol klp_enable_patch (err -2)' },
    ]);
  });
});

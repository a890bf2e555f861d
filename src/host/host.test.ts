/*
 * host/ against fake sysfs/procfs trees (fake-kernel.ts): a patch that completes, one that stalls on
 * a kthread sleeping in a patched function (timeout → reversed and unloaded; --force → complete),
 * a user task released by --signal, a cumulative patch replacing an earlier one, refusals before
 * insmod, the kernel's message on a failed load, revert, status, boot re-apply and the unit.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import type { Manifest } from '../manifest/manifest.js';
import {
  applyLivepatch,
  bootApply,
  decodeTaint,
  encodeBuildIdNote,
  hostStatus,
  listLivepatches,
  parseBuildIdNote,
  readModinfo,
  renderUnit,
  revertLivepatch,
  statusText,
  storePatch,
  type TransitionEvent,
} from './index.js';
import { FakeKernel, fakeManifest } from './testing/fake-kernel.js';

const kernels: FakeKernel[] = [];
function fake(o: ConstructorParameters<typeof FakeKernel>[0] = {}): FakeKernel {
  const k = new FakeKernel({ signalEvery: 5, tickMs: 20, ...o });
  kernels.push(k);
  return k;
}
afterEach(() => {
  for (const k of kernels.splice(0)) k.dispose();
});

const fast = { pollMs: 10, scanMs: 30, signalPeriodMs: 100, settleMs: 20 };

async function rejectsWith(
  p: Promise<unknown>,
  code: string,
): Promise<import('../diagnostic.js').SutureError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isSutureError(e), `expected SutureError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

/** fakeManifest at version 3, for the cmdline patch the fake kernel's specs load. */
function manifestFor(
  k: FakeKernel,
  file: string,
  name: string,
  over: Partial<Manifest['kernel']> = {},
): Manifest {
  return {
    ...fakeManifest(k, file, name, over),
    version: '3',
    objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, change: 'changed' }] }],
  };
}

function populate(k: FakeKernel): void {
  k.addTask({ pid: 1, comm: 'init', stack: ['[<0>] do_wait+0x1/0x2', '[<0>] kernel_wait4+0x1/0x2'] });
  k.addTask({ pid: 2, comm: 'kthreadd', kthread: true, stack: ['[<0>] kthreadd+0x1/0x2'] });
  k.addTask({ pid: 300, comm: 'sshd', stack: ['[<0>] do_select+0x1/0x2'] });
  k.addTask({ pid: 300, tid: 301, comm: 'sshd-worker', stack: ['[<0>] futex_wait+0x1/0x2'] });
}

describe('identity, taint, modinfo', () => {
  test('build id is found after other notes, like /sys/kernel/notes', () => {
    const id = '48dc540c8b76393804ca8088dbfa7d42911a9444';
    assert.equal(parseBuildIdNote(encodeBuildIdNote(id)), id);
    assert.equal(parseBuildIdNote(Buffer.alloc(0)), undefined);
    const truncated = encodeBuildIdNote(id).subarray(0, 40);
    assert.throws(() => parseBuildIdNote(truncated), /HOST-NOTES-TRUNCATED/);
  });
  test('taint bits decode to the kernel letters', () => {
    const t = decodeTaint((1 << 12) | (1 << 13) | (1 << 15));
    assert.equal(t.letters, 'OEK');
    assert.equal(t.flags[2]?.meaning, 'kernel has been live patched');
    assert.equal(decodeTaint(0).letters, '');
  });
  test('modinfo is read from the .ko ELF sections', () => {
    const k = fake();
    const info = readModinfo(k.writeModule('livepatch_cmdline'));
    assert.equal(info.name, 'livepatch_cmdline');
    assert.equal(info.livepatch, true);
    assert.equal(info.release, k.release);
    const bad = join(k.dir, 'bad.ko');
    writeFileSync(bad, Buffer.from('\x7fELF\x02\x01garbage'));
    assert.throws(() => readModinfo(bad), /HOST-MODULE-INVALID/);
  });
});

describe('apply', () => {
  test('a patch that completes: progress to all tasks, active in list, K taint, journal', async () => {
    const k = fake();
    populate(k);
    k.specs.set('livepatch_cmdline', { objects: { vmlinux: ['cmdline_proc_show'] } });
    const file = k.writeModule('livepatch_cmdline');
    const events: TransitionEvent[] = [];
    const r = await applyLivepatch({
      module: file,
      manifest: manifestFor(k, file, 'livepatch_cmdline'),
      roots: k.roots,
      onEvent: (e) => events.push(e),
      ...fast,
    });
    assert.equal(r.patch, 'livepatch_cmdline');
    assert.equal(r.forced, false);
    assert.deepEqual(r.verified, [
      'livepatch=Y in .modinfo',
      `vermagic release ${k.release}`,
      `vmlinux build id ${k.buildId}`,
      'module sha256',
    ]);
    assert.ok(events.some((e) => e.type === 'complete' && e.target === 1));
    assert.ok(events.some((e) => e.type === 'kernel-log' && /starting patching transition/.test(e.text)));
    const [p] = listLivepatches(k.roots);
    assert.equal(p?.state, 'active');
    assert.deepEqual(p?.objects, [
      { name: 'vmlinux', patched: true, funcs: [{ name: 'cmdline_proc_show', sympos: 0 }] },
    ]);
    assert.equal(p?.version, '3');
    const s = hostStatus(k.roots);
    assert.equal(s.kernel.buildId, k.buildId);
    assert.ok(s.taint?.letters.includes('K'));
  });

  test('refused before insmod: other release, other build id, not a livepatch, not root, no CONFIG_LIVEPATCH', async () => {
    const k = fake();
    k.specs.set('livepatch_x', { objects: { vmlinux: ['f'] } });
    const other = k.writeModule('livepatch_x', { release: '6.1.0-99-amd64' });
    await rejectsWith(applyLivepatch({ module: other, roots: k.roots }), 'HOST-KERNEL-MISMATCH');
    const file = k.writeModule('livepatch_x');
    const e = await rejectsWith(
      applyLivepatch({
        module: file,
        manifest: manifestFor(k, file, 'livepatch_x', { buildId: 'f'.repeat(40) }),
        roots: k.roots,
      }),
      'HOST-BUILD-ID-MISMATCH',
    );
    assert.match(e.message, new RegExp(k.buildId));
    const tampered = {
      ...manifestFor(k, file, 'livepatch_x'),
      module: { file: 'x', name: 'livepatch_x', sha256: '0'.repeat(64) },
    };
    await rejectsWith(
      applyLivepatch({ module: file, manifest: tampered, roots: k.roots }),
      'HOST-MODULE-SHA256',
    );
    await rejectsWith(
      applyLivepatch({ module: k.writeModule('plain', { livepatch: false }), roots: k.roots }),
      'HOST-NOT-LIVEPATCH',
    );
    await rejectsWith(applyLivepatch({ module: file, roots: { ...k.roots, uid: 1000 } }), 'HOST-NOT-ROOT');
    const nolp = fake({ livepatch: false });
    await rejectsWith(applyLivepatch({ module: file, roots: nolp.roots }), 'HOST-NO-LIVEPATCH');
    await rejectsWith(
      applyLivepatch({ module: file, roots: k.roots, force: true }),
      'HOST-FORCE-UNCONFIRMED',
    );
    assert.deepEqual(k.calls, [], 'insmod must never have been called');
    assert.ok(!existsSync(join(k.roots.sys, 'module/livepatch_x')));
  });

  test('a failed load reports the kernel log line, not just the errno', async () => {
    const k = fake();
    k.specs.set('livepatch_bad', { objects: { vmlinux: ['f'] } });
    k.failing.set('livepatch_bad', "livepatch: symbol 'meminfo_proc_show' not found in symbol table");
    const e = await rejectsWith(
      applyLivepatch({ module: k.writeModule('livepatch_bad'), roots: k.roots }),
      'HOST-LOAD-FAILED',
    );
    assert.match(e.message, /meminfo_proc_show' not found in symbol table/);
    assert.ok(e.diagnostic.detail?.some((l) => /Invalid parameters/.test(l)));
  });

  test('a kthread sleeping in the patched function stalls it: named with its stack, the signalling round shown, then reversed and unloaded', async () => {
    const k = fake();
    populate(k);
    k.addTask({
      pid: 77,
      comm: 'stall_sleeper',
      kthread: true,
      holds: ['stall_sleeper_wait'],
      stack: [
        '[<0>] msleep_interruptible+0x29/0x50',
        '[<0>] stall_sleeper_wait+0x15/0x30 [suture_stall]',
        '[<0>] stall_thread+0x1d/0x40 [suture_stall]',
        '[<0>] kthread+0xe9/0x110',
      ],
    });
    k.specs.set('livepatch_stall', { objects: { suture_stall: ['stall_sleeper_wait'] } });
    const events: TransitionEvent[] = [];
    const e = await rejectsWith(
      applyLivepatch({
        module: k.writeModule('livepatch_stall'),
        roots: k.roots,
        timeoutMs: 1500,
        onEvent: (ev) => events.push(ev),
        ...fast,
      }),
      'HOST-TRANSITION-TIMEOUT',
    );
    const stalled = events.find((ev) => ev.type === 'stalled');
    assert.ok(stalled && stalled.type === 'stalled');
    assert.deepEqual(
      stalled.tasks.map((t) => t.comm),
      ['stall_sleeper'],
    );
    assert.equal(stalled.tasks[0]?.kthread, true);
    assert.deepEqual(stalled.tasks[0]?.onStack, ['stall_sleeper_wait']);
    assert.ok(
      e.diagnostic.detail?.some((l) =>
        /^ {2}>> \[<0>\] stall_sleeper_wait\+0x15\/0x30 \[suture_stall\]/.test(l),
      ),
      e.diagnostic.detail?.join('\n'),
    );
    const round = events.find((ev) => ev.type === 'signal-round');
    assert.ok(round && round.type === 'signal-round', 'the kernel signalling round is reported');
    assert.equal(round.source, 'kernel-log');
    assert.deepEqual(
      round.woken.map((w) => w.comm),
      ['stall_sleeper'],
      'the kernel woke the kthread',
    );
    assert.equal(round.stillPending, 1, 'woken but still in the function: not migrated');
    assert.ok(events.some((ev) => ev.type === 'reversing'));
    assert.ok(!existsSync(join(k.roots.sys, 'kernel/livepatch/livepatch_stall')), 'reversed');
    assert.ok(!existsSync(join(k.roots.sys, 'module/livepatch_stall')), 'unloaded: the machine is as it was');
  });

  test('--force completes a stalled transition after printing the risk', async () => {
    const k = fake();
    k.addTask({ pid: 77, comm: 'stall_sleeper', kthread: true, holds: ['stall_sleeper_wait'] });
    k.specs.set('livepatch_stall', { objects: { suture_stall: ['stall_sleeper_wait'] } });
    const events: TransitionEvent[] = [];
    const r = await applyLivepatch({
      module: k.writeModule('livepatch_stall'),
      roots: k.roots,
      timeoutMs: 200,
      force: true,
      forceConfirmed: true,
      onEvent: (ev) => events.push(ev),
      ...fast,
    });
    assert.equal(r.forced, true);
    assert.equal(r.stalled[0]?.comm, 'stall_sleeper');
    const forcing = events.find((ev) => ev.type === 'forcing');
    assert.ok(forcing && forcing.type === 'forcing' && /OLD code/.test(forcing.risk));
    assert.ok(events.some((ev) => ev.type === 'kernel-log' && /forcing remaining tasks/.test(ev.text)));
    assert.equal(listLivepatches(k.roots)[0]?.state, 'active');
  });

  test('--signal sends SIGSTOP+SIGCONT to a stalled user task, which then migrates', async () => {
    const k = fake();
    k.addTask({ pid: 500, comm: 'dd', holds: ['cmdline_proc_show'] });
    k.addTask({ pid: 600, comm: 'holder_kthread', kthread: true });
    k.specs.set('livepatch_cmdline', { objects: { vmlinux: ['cmdline_proc_show'] } });
    const events: TransitionEvent[] = [];
    const r = await applyLivepatch({
      module: k.writeModule('livepatch_cmdline'),
      roots: k.roots,
      timeoutMs: 1000,
      signal: true,
      onEvent: (ev) => events.push(ev),
      ...fast,
    });
    assert.deepEqual(k.signals, ['SIGSTOP 500', 'SIGCONT 500']);
    assert.deepEqual(r.signalled, [500]);
    assert.equal(r.forced, false);
    assert.ok(events.some((ev) => ev.type === 'complete'));
  });

  test('another transition in progress is refused before insmod', async () => {
    const k = fake();
    k.addTask({ pid: 77, comm: 'stall_sleeper', kthread: true, holds: ['f'] });
    k.specs.set('livepatch_a', { objects: { vmlinux: ['f'] } });
    await k.roots.loader.insmod(k.writeModule('livepatch_a'));
    k.calls.length = 0;
    await rejectsWith(
      applyLivepatch({ module: k.writeModule('livepatch_b'), roots: k.roots }),
      'HOST-TRANSITION-BUSY',
    );
    assert.deepEqual(k.calls, []);
  });
});

describe('revert, replace, status', () => {
  test('revert: unpatching transition, then the module is removed', async () => {
    const k = fake();
    populate(k);
    k.specs.set('livepatch_cmdline', { objects: { vmlinux: ['cmdline_proc_show'] } });
    await applyLivepatch({ module: k.writeModule('livepatch_cmdline'), roots: k.roots, ...fast });
    const events: TransitionEvent[] = [];
    const r = await revertLivepatch('livepatch-cmdline', {
      roots: k.roots,
      onEvent: (e) => events.push(e),
      ...fast,
    });
    assert.equal(r.transitioned, true);
    assert.equal(r.unloaded, true);
    assert.ok(events.some((e) => e.type === 'complete' && e.target === 0));
    assert.ok(events.some((e) => e.type === 'kernel-log' && /unpatching complete/.test(e.text)));
    assert.deepEqual(listLivepatches(k.roots), []);
    assert.deepEqual(k.calls.at(-1), 'rmmod livepatch_cmdline');
    await rejectsWith(revertLivepatch('livepatch_cmdline', { roots: k.roots }), 'HOST-NO-SUCH-PATCH');
  });

  test('a cumulative patch replaces the earlier one; status says by whom; revert of the old one only unloads it', async () => {
    const k = fake();
    populate(k);
    k.specs.set('livepatch_one', { objects: { vmlinux: ['cmdline_proc_show'] } });
    k.specs.set('livepatch_two', {
      objects: { vmlinux: ['cmdline_proc_show', 'meminfo_proc_show'] },
      replace: true,
    });
    await applyLivepatch({ module: k.writeModule('livepatch_one'), roots: k.roots, ...fast });
    const r = await applyLivepatch({ module: k.writeModule('livepatch_two'), roots: k.roots, ...fast });
    assert.deepEqual(r.replaced, ['livepatch_one']);
    // a built-in module's directory has no taint file: neither a livepatch nor an error
    mkdirSync(join(k.roots.sys, 'module', 'printk', 'parameters'), { recursive: true });
    const list = listLivepatches(k.roots);
    assert.deepEqual(
      list.map((p) => [p.name, p.state, p.replacedBy]),
      [
        ['livepatch_two', 'active', undefined],
        ['livepatch_one', 'inactive', 'livepatch_two'],
      ],
    );
    const text = statusText(hostStatus(k.roots));
    assert.match(text, /livepatch_one\n\s+state: inactive \(replaced by livepatch_two\)/);
    assert.match(
      text,
      /taint: OEK — out-of-tree module loaded; unsigned module loaded; kernel has been live patched/,
    );
    const rv = await revertLivepatch('livepatch_one', { roots: k.roots, ...fast });
    assert.equal(rv.transitioned, false);
    assert.equal(rv.unloaded, true);
    assert.deepEqual(
      listLivepatches(k.roots).map((p) => p.name),
      ['livepatch_two'],
    );
  });

  test("status reads an older kernel's disabled patch and a transitioning one", async () => {
    const k = fake();
    const d = join(k.roots.sys, 'kernel/livepatch/livepatch_old');
    mkdirSync(join(d, 'vmlinux/foo,2'), { recursive: true });
    writeFileSync(join(d, 'enabled'), '0\n');
    writeFileSync(join(d, 'transition'), '0\n');
    writeFileSync(join(d, 'replace'), '1\n');
    writeFileSync(join(d, 'vmlinux/patched'), '0\n');
    k.addTask({ pid: 9, comm: 'x', holds: ['f'] });
    k.specs.set('livepatch_t', { objects: { vmlinux: ['f'] } });
    await k.roots.loader.insmod(k.writeModule('livepatch_t'));
    const s = hostStatus(k.roots);
    assert.equal(s.transition, 'livepatch_t');
    assert.deepEqual(s.transitionProgress, { target: 1, migrated: 0, total: 1 });
    const old = s.patches.find((p) => p.name === 'livepatch_old');
    assert.equal(old?.state, 'disabled');
    assert.equal(old?.replace, true, 'the replace attribute is read where the kernel has it');
    assert.deepEqual(old?.objects[0]?.funcs, [{ name: 'foo', sympos: 2 }]);
    assert.equal(s.patches.find((p) => p.name === 'livepatch_t')?.state, 'patching');
  });
});

describe('boot service', () => {
  test('boot re-apply applies only stored patches built for the running build id', async () => {
    const k = fake();
    populate(k);
    k.specs.set('livepatch_mine', { objects: { vmlinux: ['f'] } });
    k.specs.set('livepatch_old_kernel', { objects: { vmlinux: ['f'] } });
    const mine = k.writeModule('livepatch_mine');
    const old = k.writeModule('livepatch_old_kernel');
    storePatch(k.roots, old, manifestFor(k, old, 'livepatch_old_kernel', { buildId: 'a'.repeat(40) }));
    storePatch(k.roots, mine, manifestFor(k, mine, 'livepatch_mine'));
    const out = await bootApply({ roots: k.roots, timeoutMs: 2000 });
    assert.deepEqual(
      out.map((o) => [o.patch, o.action]),
      [
        ['livepatch_old_kernel', 'skipped'],
        ['livepatch_mine', 'applied'],
      ],
    );
    assert.match(out[0]?.reason ?? '', /aaaaaaaaaaaa/);
    assert.deepEqual(
      listLivepatches(k.roots).map((p) => [p.name, p.state]),
      [['livepatch_mine', 'active']],
    );
    assert.ok(!k.calls.some((c) => c.includes('old-kernel')), "the other kernel's patch was never loaded");
    const again = await bootApply({ roots: k.roots });
    assert.equal(again[1]?.reason, 'already applied');
  });

  test('the unit runs boot-apply with the store after local file systems', () => {
    const unit = renderUnit({
      node: '/usr/bin/node',
      suture: '/opt/suture/bin/suture.js',
      state: '/var/lib/suture',
    });
    assert.match(
      unit,
      /^ExecStart=\/usr\/bin\/node \/opt\/suture\/bin\/suture.js host boot-apply --timeout 60s$/m,
    );
    assert.match(unit, /^ConditionDirectoryNotEmpty=\/var\/lib\/suture\/patches$/m);
    assert.match(unit, /^Type=oneshot$/m);
    assert.match(unit, /^WantedBy=multi-user.target$/m);
  });
});

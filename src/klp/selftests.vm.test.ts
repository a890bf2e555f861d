/*
 * The kernel's own livepatch selftests as Suture's conformance suite, in the exact target kernel:
 *   1. every test module of the target's tree builds with the kernel's kbuild and compiler
 *      (selftests.ts); one that does not fails here with its compiler output;
 *   2. the six scripts (test-livepatch, -callbacks, -shadow-vars, -state, -ftrace, -sysfs) run in a
 *      Debian guest (bash, kmod, procps, systemd's debugfs) and every "TEST: … ok";
 *   3. the same scenarios through `suture apply/revert/list`, with the built test modules as the
 *      livepatches: callbacks in the kernel's order, a busy target module stalling the transition
 *      until Suture reverses it, an atomic replace that drops the replaced patch's callbacks, and a
 *      klp_state of a lower version refused with the kernel's reason.
 * One guest boot per kernel. The 6.1 default always; the 6.12 lines when cached or SUTURE_FETCH_TESTS.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { isCached } from '../kernel/releases.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { buildTarball } from '../package/tarball.js';
import { DebianGuest } from '../vm/guest/debian.js';
import { MEDIA_MOUNT, MOUNT_MEDIA } from '../vm/guest/media.js';
import type { VmSession } from '../vm/index.js';
import { buildSelftests, guestInstall, guestScript, type SelftestBuild } from './selftests.js';

const LINES_612 = ['6.12.117+deb12-cloud-amd64', '6.12.117+deb13-cloud-amd64'];
const AT = '/opt/klp-selftests';
const MODS = '/lib/modules/$(uname -r)/extra/klp-selftests';
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

const work = mkdtempSync(join(tmpdir(), 'suture-selftests-vm-'));
after(() => rmSync(work, { recursive: true, force: true }));
let tarball: Promise<string> | undefined;
/** Suture's release tarball, made once for every kernel's guest. */
const sutureTarball = () => {
  tarball ??= buildTarball(join(work, 'release')).then((r) => r.path);
  return tarball;
};

function conformance(release: string): void {
  describe(`the kernel's livepatch selftests on ${release} (VM)`, { timeout: 3_600_000 }, () => {
    let kernel: KernelTarget;
    let built: SelftestBuild;
    let guest: DebianGuest;
    let vm: VmSession;
    const times: string[] = [];
    let t0 = 0;
    const lap = (what: string, since: number) =>
      times.push(`${what} ${((performance.now() - since) / 1000).toFixed(1)} s`);

    async function sh(cmd: string, timeoutMs = 180_000): Promise<{ code: number; out: string }> {
      const r = await vm.exec(cmd, { timeoutMs });
      assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
      assert.ok(!r.timedOut, `${cmd} timed out after ${timeoutMs} ms:\n${r.output}`);
      return { code: r.exitCode, out: r.output.replace(ANSI, '').replaceAll('\r', '') };
    }
    async function ok(cmd: string, timeoutMs?: number): Promise<string> {
      const r = await sh(cmd, timeoutMs);
      assert.equal(r.code, 0, `${cmd} exited ${r.code}:\n${r.out}`);
      return r.out;
    }
    /** The kernel's messages after a fresh marker, while `cmd` runs; cmd's own result too. */
    let marks = 0;
    async function withLog(cmd: string): Promise<{ code: number; out: string; log: string[] }> {
      const mark = `suture-selftest-mark-${++marks}`;
      await ok(`echo ${mark} > /dev/kmsg`);
      const r = await sh(cmd);
      const all = (await ok('dmesg')).split('\n').map((l) => l.replace(/^\[[ 0-9.]*\] /, ''));
      return { ...r, log: all.slice(all.findIndex((l) => l.includes(mark)) + 1) };
    }
    /** Each line of `want` appears in `log`, in this order. */
    function inOrder(log: string[], want: string[]): void {
      let at = -1;
      for (const w of want) {
        const i = log.findIndex((l, k) => k > at && l.includes(w));
        assert.ok(i > at, `"${w}" after line ${at} of the kernel log:\n${log.join('\n')}`);
        at = i;
      }
    }

    before(async () => {
      t0 = performance.now();
      kernel = await ensureKernel(release);
      let since = performance.now();
      built = await buildSelftests(kernel, join(work, release));
      lap('module build', since);
      const bundle = join(work, release, 'klp-selftests.tar.gz');
      const tar = spawnSync('tar', ['-czf', bundle, '-C', built.dir, '.'], { encoding: 'utf8' });
      assert.equal(tar.status, 0, tar.stderr);
      guest = await DebianGuest.create({ kernel, media: [await sutureTarball(), bundle] });
      since = performance.now();
      vm = await guest.boot({ timeoutMs: 3_600_000 });
      lap('boot', since);
      const suture = (await sutureTarball()).split('/').pop();
      await ok(
        [
          MOUNT_MEDIA,
          `tar -xzf ${MEDIA_MOUNT}/${suture} -C /`,
          `mkdir -p ${AT} && tar -xzf ${MEDIA_MOUNT}/klp-selftests.tar.gz -C ${AT}`,
          `umount ${MEDIA_MOUNT}`,
        ].join(' && '),
      );
      await ok(guestInstall(AT));
    });

    after(async () => {
      times.push(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      console.error(`selftests on ${release}: ${times.join(', ')}`);
      await vm?.close();
      guest?.dispose();
    });

    test('every test module builds against the target with its own compiler', () => {
      const failed = built.modules.filter((m) => !m.ko);
      assert.deepEqual(
        failed.map((m) => m.name),
        [],
        failed.map((m) => `${m.name}:\n${m.errors.join('\n')}`).join('\n\n'),
      );
      for (const m of ['test_klp_livepatch', 'test_klp_callbacks_demo', 'test_klp_state2'])
        assert.ok(
          built.modules.some((b) => b.name === m && b.ko),
          m,
        );
      assert.deepEqual(built.sources.missing, [], `scripts this tree lacks: ${built.sources.missing}`);
    });

    for (const script of [
      'test-livepatch',
      'test-callbacks',
      'test-shadow-vars',
      'test-state',
      'test-ftrace',
      'test-sysfs',
    ])
      test(`${script}.sh passes`, async () => {
        const since = performance.now();
        const r = await sh(guestScript(AT, script), 1_200_000);
        lap(script, since);
        const tests = r.out.split('\n').filter((l) => l.startsWith('TEST: '));
        assert.equal(r.code, 0, `${script}.sh exited ${r.code}:\n${r.out}`);
        assert.ok(tests.length > 0, `${script}.sh ran no test:\n${r.out}`);
        for (const t of tests) assert.match(t, / \.\.\. ok$/, `${t}\n\n${r.out}`);
        assert.doesNotMatch(r.out, /not ok|SKIP|ERROR/, r.out);
      });

    test('through suture: callbacks run in the kernel’s order on apply and revert', async () => {
      const since = performance.now();
      const lp = 'test_klp_callbacks_demo';
      const a = await withLog(`suture apply ${MODS}/${lp}.ko --timeout 60s`);
      assert.equal(a.code, 0, a.out);
      assert.match(a.out, new RegExp(`applied ${lp}: transition took`));
      inOrder(a.log, [
        `${lp}: pre_patch_callback: vmlinux`,
        `'${lp}': starting patching transition`,
        `${lp}: post_patch_callback: vmlinux`,
        `'${lp}': patching complete`,
      ]);
      assert.match(await ok('suture list'), new RegExp(`^${lp}\\tactive\\t`, 'm'));
      const r = await withLog(`suture revert ${lp}`);
      assert.equal(r.code, 0, r.out);
      inOrder(r.log, [
        `${lp}: pre_unpatch_callback: vmlinux`,
        `'${lp}': starting unpatching transition`,
        `${lp}: post_unpatch_callback: vmlinux`,
        `'${lp}': unpatching complete`,
      ]);
      assert.equal((await ok('ls /sys/kernel/livepatch | wc -l')).trim(), '0');
      lap('suture callbacks', since);
    });

    test('through suture: a busy target module stalls the transition and suture reverses it', async () => {
      const since = performance.now();
      const lp = 'test_klp_callbacks_demo';
      await ok('modprobe test_klp_callbacks_busy block_transition=Y');
      const a = await withLog(`suture apply ${MODS}/${lp}.ko --timeout 5s`);
      assert.notEqual(a.code, 0, a.out);
      assert.match(
        a.out,
        new RegExp(
          `error\\[HOST-TRANSITION-TIMEOUT\\]: ${lp}: transition not complete after \\d+ s; reversed and unloaded`,
        ),
      );
      // the kworker running busymod_work_func is the task that holds the transition
      assert.match(a.out, /kthread kworker\S* pid \d+ .*sleeping in busymod_work_func/);
      inOrder(a.log, [
        `${lp}: pre_patch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state`,
        `'${lp}': starting patching transition`,
        `'${lp}': starting unpatching transition`,
        `${lp}: post_unpatch_callback: test_klp_callbacks_busy -> [MODULE_STATE_LIVE] Normal state`,
        `'${lp}': unpatching complete`,
      ]);
      assert.doesNotMatch(a.log.join('\n'), new RegExp(`${lp}: post_patch_callback`));
      assert.equal((await ok('ls /sys/kernel/livepatch | wc -l')).trim(), '0');
      assert.doesNotMatch(await ok('cat /proc/modules'), new RegExp(`^${lp} `, 'm'));
      await ok('echo N > /sys/module/test_klp_callbacks_busy/parameters/block_transition');
      await ok('rmmod test_klp_callbacks_busy');
      lap('suture busy', since);
    });

    test('through suture: an atomic replace drops the replaced patch’s callbacks', async () => {
      const since = performance.now();
      const a = await withLog(`suture apply ${MODS}/test_klp_state.ko`);
      assert.equal(a.code, 0, a.out);
      inOrder(a.log, [
        'test_klp_state: pre_patch_callback: vmlinux',
        'test_klp_state: allocate_loglevel_state: allocating space to store console_loglevel',
        'test_klp_state: post_patch_callback: vmlinux',
      ]);
      const b = await withLog(`suture apply ${MODS}/test_klp_state2.ko`);
      assert.equal(b.code, 0, b.out);
      assert.match(b.out, /test_klp_state2: cumulative patch replaced test_klp_state/);
      inOrder(b.log, [
        'test_klp_state2: pre_patch_callback: vmlinux',
        'test_klp_state2: allocate_loglevel_state: space to store console_loglevel already allocated',
        'test_klp_state2: post_patch_callback: vmlinux',
        'test_klp_state2: fix_console_loglevel: taking over the console_loglevel change',
      ]);
      // the replaced patch's unpatch callbacks never ran: its state was handed over, not restored
      assert.doesNotMatch(b.log.join('\n'), /test_klp_state: (pre|post)_unpatch_callback/);
      const list = await ok('suture list');
      assert.match(list, /^test_klp_state\tinactive, replaced by test_klp_state2\t/m);
      assert.match(list, /^test_klp_state2\tactive\t/m);
      assert.match(
        await ok('suture revert test_klp_state'),
        /no longer active \(replaced by test_klp_state2\)/,
      );
      lap('suture replace', since);
    });

    test('through suture: a klp_state of a lower version is refused with the kernel’s reason', async () => {
      const since = performance.now();
      const a = await withLog(`suture apply ${MODS}/test_klp_state.ko`);
      assert.notEqual(a.code, 0, a.out);
      assert.match(a.out, /error\[HOST-LOAD-FAILED\]: the kernel refused test_klp_state/);
      assert.match(a.out, /is not compatible with the already installed livepatches/);
      inOrder(a.log, [
        'livepatch: Livepatch patch (test_klp_state) is not compatible with the already installed livepatches.',
      ]);
      assert.equal(
        (await ok('ls /sys/kernel/livepatch')).trim(),
        'test_klp_state2',
        'the active patch stays',
      );
      assert.doesNotMatch(await ok('cat /proc/modules'), /^test_klp_state /m);
      const r = await withLog('suture revert test_klp_state2');
      assert.equal(r.code, 0, r.out);
      inOrder(r.log, [
        'test_klp_state2: restore_console_loglevel: restoring console_loglevel',
        'test_klp_state2: free_loglevel_state: freeing space for the stored console_loglevel',
      ]);
      assert.equal((await ok('ls /sys/kernel/livepatch | wc -l')).trim(), '0');
      lap('suture state', since);
    });
  });
}

conformance(defaultRelease());
for (const release of LINES_612) {
  if (isCached(release) || process.env.SUTURE_FETCH_TESTS) conformance(release);
  else
    test(`the kernel's livepatch selftests on ${release} (VM)`, (t) =>
      t.skip(`${release} is not cached and SUTURE_FETCH_TESTS is unset`));
}

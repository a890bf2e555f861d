/*
 * The real `suture` inside a VM running the exact target kernel (6.1 Debian cloud, and Debian 12's 6.12), on real
 * livepatches built by kbuild from testdata/: apply/revert of the blog's cmdline patch, a cumulative
 * patch replacing it, refusals of patches for another kernel before init_module, and a transition
 * stalled on purpose by a kthread sleeping in a patched function. One VM boot serves every step
 * (steps run in order and depend on each other's clean-up).
 *
 * What the kernel does at each step of the stall (observed on 6.1.0-53, kernel/livepatch/transition.c):
 *  1. insmod livepatch_stall: klp_enable_patch starts the patching transition; every task whose stack
 *     does not hold suture_stall_sleeper_wait switches within the first retry (61 of 62 here).
 *  2. The kthread `suture_stall` sleeps in suture_stall_sleeper_wait (schedule_timeout_interruptible),
 *     so klp_check_stack finds the function on its stack at every ~1 s retry: it never switches.
 *  3. At the 15th retry (~15 s) klp_send_signals logs "signaling remaining tasks" and, the task being a
 *     kthread, calls wake_up_state(task, TASK_INTERRUPTIBLE) instead of a fake signal: the sleep ends
 *     early (the module's early_wakeups goes 0 → 1, its voluntary context switches rise) but the
 *     thread loops straight back to sleep in the same function, so it still does not switch.
 *     Kthreads never pass the exit-to-user path where TIF_PATCH_PENDING would switch them.
 *  4. On timeout without --force, suture writes 0 to `enabled`: klp_reverse_transition flips the
 *     target; the stalled kthread is already in the (new) target state, the others switch back, the
 *     patch is freed and its module removed: nothing loaded remains.
 *  5. With --force, writing 1 to `force` (klp_force_transition) logs "forcing remaining tasks to the
 *     patched state" and marks the kthread patched without a stack check; the next retry completes.
 *     The kthread keeps running the OLD function it sleeps in — exactly the risk --force prints.
 *  6. Reverting the forced patch completes normally: the kthread's stack holds the old function, not
 *     the replacement, so the unpatching transition can switch it.
 *
 * And what it does to a user task instead (livepatch_reader; `cat` blocked in read(2) of
 * /proc/suture_stall, inside suture_stall_reader_wait):
 *  7. The patching transition stalls on `cat` exactly like on the kthread. `--signal` at the 5 s
 *     timeout sends SIGSTOP: the wait ends with -ERESTARTSYS (interrupted_reads 0 → 1), the task
 *     passes exit_to_user_mode_loop, where TIF_PATCH_PENDING makes it switch, stops, SIGCONT resumes
 *     it and the read restarts — now in the replacement (its stack shows
 *     livepatch_suture_stall_reader_wait [livepatch_reader]). The transition completes at once.
 *  8. Reverting stalls the other way (cat now sleeps in the replacement). Without any help from
 *     suture, the kernel's first round at ~15 s sends cat a fake signal (set_notify_signal): the wait
 *     ends (interrupted_reads 1 → 2), cat switches on its way out, the read restarts in the original
 *     function, and the unpatching completes by itself — where the kthread, merely woken, never did.
 *     The process never sees a signal: its read just goes on.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureKernel } from '../kernel/fetch.js';
import { isCached } from '../kernel/releases.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runKbuild } from '../klp/kbuild.js';
import type { Manifest } from '../manifest/manifest.js';
import { bootVm, type VmSession } from '../vm/index.js';

const testdata = fileURLToPath(new URL('../../src/host/testdata/', import.meta.url));
const MODULES = [
  'livepatch-cmdline',
  'livepatch-cumulative',
  'suture-stall',
  'livepatch-stall',
  'livepatch-reader',
];

/** A release of the same length that is not `release` (6.1.0-53 → 6.1.1-53, 6.12.117 → 6.12.118). */
function otherRelease(release: string): string {
  return release.replace(
    /^(\d+\.\d+\.)(\d+)/,
    (_m, a: string, b: string) => a + String((Number(b) + 1) % 10 ** b.length).padStart(b.length, '0'),
  );
}

/**
 * The whole session on one kernel: the default (6.1) line always; Debian 12's own 6.12 line when it
 * is cached or SUTURE_FETCH_TESTS asks for it (scripts/test.sh does), so stall reporting, --signal and
 * --force are proven on both lines.
 */
function hostSession(release: string, series: string): void {
  let kernel: KernelTarget;
  let work: string;
  let vm: VmSession;
  let console_ = '';
  const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

  async function sh(cmd: string, timeoutMs = 120_000): Promise<{ code: number; out: string }> {
    const r = await vm.exec(cmd, { timeoutMs });
    assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
    // the guest's stdout is a terminal: strip colours and the progress line's rewrites
    return { code: r.exitCode, out: r.output.replace(ANSI, '').replaceAll('\r', '\n') };
  }

  function manifest(file: string, name: string, over: Partial<Manifest['kernel']> = {}): Manifest {
    return {
      schema: 1,
      name: name.replace(/^livepatch_/, ''),
      version: '1',
      kernel: { release: kernel.release, buildId: kernel.buildId, ...over },
      replace: false,
      objects: [
        { name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, change: 'changed' }] },
      ],
      module: {
        file: `${name}.ko`,
        sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
        name,
      },
      source: {},
      cves: [],
      tool: { name: 'suture', version: '0.1.0' },
    };
  }

  describe(`suture on a live ${series} kernel (VM)`, { timeout: 1_800_000 }, () => {
    before(async () => {
      kernel = await ensureKernel(release);
      work = mkdtempSync(join(tmpdir(), 'suture-host-vm-'));
      const files: Array<{ from: string; to: string }> = [];
      for (const m of MODULES) {
        const dir = join(work, m);
        cpSync(join(testdata, m), dir, { recursive: true });
        await runKbuild(kernel.sourceTree, dir);
        files.push({ from: join(dir, `${m}.ko`), to: `/m/${m}.ko` });
      }
      const cmdline = join(work, 'livepatch-cmdline', 'livepatch-cmdline.ko');
      // the same module, claiming another kernel in its vermagic (same length: the ELF stays valid)
      const bytes = readFileSync(cmdline);
      const foreign = Buffer.from(
        bytes.toString('latin1').replaceAll(kernel.release, otherRelease(kernel.release)),
        'latin1',
      );
      assert.notDeepEqual(foreign, bytes);
      writeFileSync(join(work, 'foreign.ko'), foreign);
      files.push({ from: join(work, 'foreign.ko'), to: '/m/livepatch-foreign/livepatch-cmdline.ko' });
      const good = manifest(cmdline, 'livepatch_cmdline');
      const otherBuild = manifest(cmdline, 'livepatch_cmdline', { buildId: 'f'.repeat(40) });
      writeFileSync(join(work, 'good.json'), JSON.stringify(good));
      writeFileSync(join(work, 'other-build.json'), JSON.stringify(otherBuild));
      files.push(
        { from: join(work, 'good.json'), to: '/m/good.json' },
        { from: join(work, 'other-build.json'), to: '/m/other-build.json' },
      );
      vm = await bootVm({
        kernel,
        files,
        withSuture: true,
        timeoutMs: 1_800_000,
        onConsole: (c) => {
          console_ += c;
        },
      });
    });

    after(async () => {
      await vm?.close();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test('status on a clean kernel: release, the build id of the running vmlinux, livepatch supported', async () => {
      const r = await sh('suture status --json');
      assert.equal(r.code, 1, `exit 1: no patch applied, none available; ${r.out}`);
      const s = JSON.parse(r.out.slice(r.out.indexOf('{')));
      assert.equal(s.kernel.release, kernel.release);
      assert.equal(
        s.kernel.buildId,
        kernel.buildId,
        'build id parsed from /sys/kernel/notes = the vmlinux the cache holds',
      );
      assert.equal(s.livepatchSupported, true);
      assert.deepEqual(s.patches, []);
    });

    test('a patch for another kernel is refused before init_module', async () => {
      const modsBefore = (await sh('cat /proc/modules')).out;
      const dmesgBefore = Number((await sh('dmesg | wc -l')).out.trim());
      const vermagic = await sh('suture apply /m/livepatch-foreign/livepatch-cmdline.ko');
      assert.equal(vermagic.code, 1, vermagic.out);
      assert.match(
        vermagic.out,
        new RegExp(
          `error\\[HOST-KERNEL-MISMATCH\\].*built for ${otherRelease(kernel.release).replaceAll('.', '\\.').replaceAll('+', '\\+')}`,
        ),
      );
      const build = await sh('suture apply /m/livepatch-cmdline.ko --manifest /m/other-build.json');
      assert.equal(build.code, 1, build.out);
      assert.match(build.out, /error\[HOST-BUILD-ID-MISMATCH\]: manifest targets vmlinux build id f{40}/);
      assert.equal((await sh('cat /proc/modules')).out, modsBefore, 'no module was loaded');
      assert.equal((await sh('ls /sys/kernel/livepatch | wc -l')).out.trim(), '0');
      // init_module would log at least "loading out-of-tree module taints kernel" / the vermagic refusal
      const fresh = (await sh(`dmesg | tail -n +${dmesgBefore + 1}`)).out;
      assert.doesNotMatch(fresh, /livepatch|module|taint|version magic/i, 'init_module was never called');
    });

    test("the blog's cmdline patch: apply with its manifest, see it complete, revert it", async () => {
      const original = (await sh('cat /proc/cmdline')).out.trim();
      const a = await sh('suture apply /m/livepatch-cmdline.ko --manifest /m/good.json --timeout 60s');
      assert.equal(a.code, 0, a.out);
      assert.match(a.out, new RegExp(`verified .*vmlinux build id ${kernel.buildId}`));
      assert.match(a.out, /kernel: livepatch: 'livepatch_cmdline': patching complete/);
      assert.match(a.out, /applied livepatch_cmdline: transition took [\d.]+ s/);
      assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'this has been live patched');
      const st = await sh('suture status');
      assert.match(st.out, /taint: \w*K\w* — /);
      assert.match(
        st.out,
        /livepatch_cmdline\n\s+state: active, version 1\n\s+patches vmlinux: cmdline_proc_show,1/,
      );
      const r = await sh('suture revert livepatch_cmdline');
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /unpatching complete/);
      assert.match(r.out, /module unloaded/);
      assert.equal((await sh('cat /proc/cmdline')).out.trim(), original);
      assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_cmdline/);
    });

    test("a persisted patch comes back with `host boot-apply` (the unit's command), a patch for another build does not", async () => {
      const original = (await sh('cat /proc/cmdline')).out.trim();
      const a = await sh('suture apply /m/livepatch-cmdline.ko --manifest /m/good.json --persist');
      assert.equal(a.code, 0, a.out);
      assert.match(a.out, /stored for boot in \/var\/lib\/suture\/patches\/000001-livepatch_cmdline/);
      // a stored patch whose manifest names another build of this release
      const other = '/var/lib/suture/patches/000002-livepatch_cmdline';
      assert.equal(
        (
          await sh(
            `mkdir -p ${other} && cp /m/livepatch-cmdline.ko ${other}/livepatch_cmdline.ko && cp /m/other-build.json ${other}/manifest.json`,
          )
        ).code,
        0,
      );
      const i = await sh(
        'suture host install-service --unit-dir /etc/systemd/system --no-enable && cat /etc/systemd/system/suture-livepatch.service',
      );
      assert.equal(i.code, 0, i.out);
      assert.match(
        i.out,
        /^ExecStart=\/usr\/bin\/node \/opt\/suture\/bin\/suture\.js host boot-apply --timeout 60s$/m,
      );
      // "reboot": the kernel forgets the patch (disabled and unloaded behind suture's back); the store stays
      const forget =
        'P=/sys/kernel/livepatch/livepatch_cmdline; echo 0 > $P/enabled; while [ -d $P ]; do sleep 0.1; done; until rmmod livepatch_cmdline; do sleep 0.1; done';
      assert.equal((await sh(forget)).code, 0);
      assert.equal((await sh('cat /proc/cmdline')).out.trim(), original);
      const b = await sh('suture host boot-apply');
      assert.equal(b.code, 0, b.out);
      assert.match(b.out, /^livepatch_cmdline: applied$/m);
      assert.match(
        b.out,
        /^livepatch_cmdline: skipped \(built for \S+ \(ffffffffffff\), running \S+ \([0-9a-f]{12}\)\)$/m,
      );
      assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'this has been live patched');
      const r = await sh('suture revert livepatch_cmdline && ls /var/lib/suture/patches | wc -l');
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /\n0\n?$/, 'revert dropped the patch from the boot store');
    });

    test('a cumulative patch replaces the first one; status says so', async () => {
      assert.equal((await sh('suture apply /m/livepatch-cmdline.ko')).code, 0);
      const c = await sh('suture apply /m/livepatch-cumulative.ko');
      assert.equal(c.code, 0, c.out);
      assert.match(c.out, /livepatch_cumulative: cumulative patch replaced livepatch_cmdline/);
      assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'cumulative patch v2 in effect');
      assert.equal(
        (await sh('ls /sys/kernel/livepatch')).out.trim(),
        'livepatch_cumulative',
        'the kernel freed the replaced patch',
      );
      const list = await sh('suture list');
      assert.match(list.out, /^livepatch_cumulative\tactive\t/m);
      assert.match(list.out, /^livepatch_cmdline\tinactive, replaced by livepatch_cumulative\t/m);
      const st = await sh('suture status --yaml');
      assert.match(
        st.out,
        /name: livepatch_cmdline\n\s+state: inactive[\s\S]*?replacedBy: livepatch_cumulative/,
      );
      // the replaced module is only unloaded; the cumulative one goes through its unpatching transition
      const r1 = await sh('suture revert livepatch_cmdline');
      assert.equal(r1.code, 0, r1.out);
      assert.match(r1.out, /no longer active \(replaced by livepatch_cumulative\)/);
      assert.equal((await sh('suture revert livepatch_cumulative')).code, 0);
      assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_/);
    });

    test('a transition stalled by a kthread: named with its stack, reversed; the kernel signals it; --force completes it', async () => {
      assert.equal((await sh('insmod /m/suture-stall.ko')).code, 0);
      const pid = (
        await sh('pidof suture_stall || ps | grep "[s]uture_stall" | awk \'{print $1}\'')
      ).out.trim();
      assert.match(pid, /^\d+$/);
      assert.equal((await sh('cat /sys/module/suture_stall/parameters/early_wakeups')).out.trim(), '0');

      // steps 1, 2, 4: timeout after 5 s, the kthread named with the patched frame, then everything undone
      const t = await sh('suture apply /m/livepatch-stall.ko --timeout 5s');
      assert.equal(t.code, 1, t.out);
      assert.match(
        t.out,
        new RegExp(
          `kthread suture_stall pid ${pid} state S \\(sleeping\\) — sleeping in suture_stall_sleeper_wait`,
        ),
      );
      assert.match(
        t.out,
        /^\s+>> \[<0>\] suture_stall_sleeper_wait\+0x[0-9a-f]+\/0x[0-9a-f]+ \[suture_stall\]$/m,
      );
      assert.match(t.out, /the kernel has not signalled yet: its first round comes 15\.0 s after/);
      assert.match(t.out, /error\[HOST-TRANSITION-TIMEOUT\].*reversed and unloaded/);
      assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_stall/);
      assert.equal((await sh('ls /sys/kernel/livepatch | wc -l')).out.trim(), '0');
      assert.equal(
        (await sh('cat /sys/module/suture_stall/parameters/early_wakeups')).out.trim(),
        '0',
        'no signalling round happened in 5 s',
      );

      // steps 3, 5: wait past the kernel's first round (~15 s after the transition starts, at the 15th
      // retry; a busy host can stretch the retries, hence the margin), then force
      const f = await sh('suture apply /m/livepatch-stall.ko --timeout 22s --force --i-understand-the-risk');
      assert.equal(f.code, 0, f.out);
      assert.match(f.out, /kernel: livepatch: signaling remaining tasks/);
      assert.match(
        f.out,
        new RegExp(
          `kernel signalling round 1 at [\\d.]+ s \\(kernel log: "signaling remaining tasks"\\): woke kthread suture_stall \\(${pid}\\); 0 migrated, 1 still pending`,
        ),
      );
      assert.match(f.out, /FORCING the transition \(force ← 1\)\. Risk: /);
      assert.match(f.out, /kernel: livepatch: forcing remaining tasks to the patched state/);
      assert.match(f.out, /patching complete in [\d.]+ s \(FORCED\)/);
      const woken = Number((await sh('cat /sys/module/suture_stall/parameters/early_wakeups')).out.trim());
      assert.ok(
        woken >= 1,
        `the kernel woke the kthread (early_wakeups ${woken}) and it slept again in the same function`,
      );
      assert.equal(
        (
          await sh(
            'cat /sys/kernel/livepatch/livepatch_stall/transition /sys/kernel/livepatch/livepatch_stall/enabled',
          )
        ).out.trim(),
        '0\n1',
      );

      // step 6: clean up: revert completes (the kthread holds the old function, not the replacement)
      const r = await sh('suture revert livepatch_stall --timeout 30s');
      assert.equal(r.code, 0, r.out);
      assert.equal((await sh('rmmod suture_stall')).code, 0);
      assert.doesNotMatch((await sh('cat /proc/modules')).out, /suture_stall|livepatch_stall/);
    });

    test("a user task in a patched function: --signal switches it at once; the kernel's fake signal does it at ~15 s", async () => {
      assert.equal((await sh('insmod /m/suture-stall.ko')).code, 0);
      const pid = (await sh('cat /proc/suture_stall >/dev/null 2>&1 </dev/null & echo $!')).out.trim();
      assert.match(pid, /^\d+$/);
      const reads = async () =>
        (await sh('cat /sys/module/suture_stall/parameters/interrupted_reads')).out.trim();
      // step 7
      const a = await sh('sleep 1; suture apply /m/livepatch-reader.ko --timeout 5s --signal');
      assert.equal(a.code, 0, a.out);
      assert.match(
        a.out,
        new RegExp(`task cat pid ${pid} state S \\(sleeping\\) — sleeping in suture_stall_reader_wait`),
      );
      assert.match(
        a.out,
        /^\s+>> \[<0>\] suture_stall_reader_wait\+0x[0-9a-f]+\/0x[0-9a-f]+ \[suture_stall\]$/m,
      );
      assert.match(a.out, new RegExp(`sent SIGSTOP\\+SIGCONT to cat \\(${pid}\\); waiting again`));
      assert.match(a.out, /patching complete in [\d.]+ s\n/);
      assert.doesNotMatch(a.out, /FORCED/);
      assert.equal(await reads(), '1', 'SIGSTOP ended the wait once');
      assert.match(
        (await sh(`cat /proc/${pid}/stack`)).out,
        /livepatch_suture_stall_reader_wait\+\S+ \[livepatch_reader\]/,
      );
      // step 8
      const r = await sh('suture revert livepatch_reader --timeout 40s');
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /kernel: livepatch: signaling remaining tasks/);
      assert.match(
        r.out,
        /kernel signalling round 1 at [\d.]+ s \(kernel log: "signaling remaining tasks"\): .*; 1 migrated, 0 still pending/,
      );
      assert.match(r.out, /unpatching complete in [\d.]+ s\n/);
      assert.equal(await reads(), '2', "the kernel's fake signal ended the wait once more");
      assert.match(
        (await sh(`cat /proc/${pid}/stack`)).out,
        /^\[<0>\] suture_stall_reader_wait\+\S+ \[suture_stall\]$/m,
      );
      // cat must be gone before rmmod: remove_proc_entry waits for reads in flight
      const k = await sh(
        `kill -9 ${pid}; i=0; while [ -d /proc/${pid} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ` +
          `if [ -d /proc/${pid} ]; then grep State /proc/${pid}/status; cat /proc/${pid}/stack; exit 1; fi`,
        30_000,
      );
      assert.equal(k.code, 0, `cat (${pid}) survived kill -9:\n${k.out}`);
      const u = await sh('rmmod suture_stall', 30_000);
      assert.equal(u.code, 0, u.out);
      assert.doesNotMatch((await sh('cat /proc/modules')).out, /suture_stall|livepatch_reader/);
    });

    test('no kernel problem on the console during the whole session', () => {
      assert.doesNotMatch(console_, /BUG:|Oops|WARNING:|Call Trace/);
    });
  });
}

hostSession(defaultRelease(), '6.1');
const LINE_612 = '6.12.117+deb12-cloud-amd64';
if (isCached(LINE_612) || process.env.SUTURE_FETCH_TESTS) hostSession(LINE_612, '6.12');
else
  test(`suture on a live 6.12 kernel (VM)`, (t) =>
    t.skip(`${LINE_612} is not cached and SUTURE_FETCH_TESTS is unset`));

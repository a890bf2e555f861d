/*
 * The crash-loop guard and the kill switch with the real `suture` in a VM on the target kernel:
 * testdata/livepatch-warn raises a WARN right after klp_enable_patch; `suture apply` sees it in the
 * kernel log, marks the patch bad (status exits 4 and shows the excerpt), and `suture host
 * boot-apply` — what the boot unit runs after the reboot — skips it. The machine "not coming back"
 * is an attempt mark from another boot left in the guard's directory: boot-apply turns it into a bad
 * mark and skips that patch too. /etc/suture/mode=no-apply makes boot-apply load nothing; garbage
 * there is taken as normal with a warning. One VM serves every step, in order.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runKbuild } from '../klp/kbuild.js';
import type { Manifest } from '../manifest/manifest.js';
import { bootVm, type VmSession } from '../vm/index.js';

const testdata = fileURLToPath(new URL('../../src/host/testdata/', import.meta.url));
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');
const STORE = '/var/lib/suture/patches';
const GUARD = '/var/lib/suture/guard';

let kernel: KernelTarget;
let work: string;
let vm: VmSession;

async function sh(cmd: string): Promise<{ code: number; out: string; problems: string[] }> {
  const r = await vm.exec(cmd, { timeoutMs: 180_000 });
  return {
    code: r.exitCode,
    out: r.output.replace(ANSI, '').replaceAll('\r', '\n'),
    problems: r.problems.map((p) => `${p.kind}: ${p.title}`),
  };
}

function manifest(file: string, name: string, fn: string): Manifest {
  return {
    schema: 1,
    name: name.replace(/^livepatch_/, ''),
    version: '1',
    kernel: { release: kernel.release, buildId: kernel.buildId },
    replace: false,
    objects: [{ name: 'vmlinux', functions: [{ name: fn, sympos: 0, change: 'changed' }] }],
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

describe('crash-loop guard and kill switch on a live 6.1 kernel (VM)', { timeout: 1_800_000 }, () => {
  before(async () => {
    kernel = await ensureKernel(defaultRelease());
    work = mkdtempSync(join(tmpdir(), 'suture-guard-vm-'));
    const files: Array<{ from: string; to: string }> = [];
    const mods: Array<[string, string, string]> = [
      ['livepatch-warn', 'livepatch_warn', 'version_proc_show'],
      ['livepatch-cmdline', 'livepatch_cmdline', 'cmdline_proc_show'],
    ];
    for (const [dirName, name, fn] of mods) {
      const dir = join(work, dirName);
      cpSync(join(testdata, dirName), dir, { recursive: true });
      await runKbuild(kernel.sourceTree, dir);
      const ko = join(dir, `${dirName}.ko`);
      writeFileSync(join(work, `${dirName}.json`), JSON.stringify(manifest(ko, name, fn)));
      files.push(
        { from: ko, to: `/m/${dirName}.ko` },
        { from: join(work, `${dirName}.json`), to: `/m/${dirName}.json` },
      );
    }
    vm = await bootVm({ kernel, files, withSuture: true, timeoutMs: 1_800_000 });
  });

  after(async () => {
    await vm?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('a WARN right after the load: apply marks the patch bad, status exits 4 with the excerpt', async () => {
    const a = await sh('suture apply /m/livepatch-warn.ko --manifest /m/livepatch-warn.json --persist');
    assert.equal(a.code, 1, a.out);
    assert.match(a.out, /error\[HOST-PATCH-BAD\]: livepatch_warn was loaded and the kernel logged a WARN/);
    assert.ok(
      a.problems.some((p) => /^warning: /.test(p)),
      `the console shows the kernel's WARNING too: ${JSON.stringify(a.problems)}`,
    );
    const st = await sh('suture status --json');
    assert.equal(st.code, 4, st.out);
    const s = JSON.parse(st.out.slice(st.out.indexOf('{')));
    assert.equal(s.verdict, 'bad');
    assert.equal(s.bad[0].patch, 'livepatch_warn');
    assert.equal(s.bad[0].reason, 'warn');
    assert.match(s.bad[0].kernelLog, /WARNING: CPU: \d+ PID: \d+ at .*livepatch_warn_init/);
    assert.match(s.bad[0].kernelLog, /a WARN on purpose right after klp_enable_patch/);
    const text = await sh('suture status');
    assert.match(text.out, /marked bad by the crash-loop guard:\n\s+livepatch_warn: warn at /);
  });

  test('after the "reboot" boot-apply skips the bad patch; apply refuses it', async () => {
    // the reboot: the patch is gone from the kernel, its store entry and the bad mark stay on disk
    const r = await sh('suture revert livepatch_warn');
    assert.equal(r.code, 0, r.out);
    await sh(
      `mkdir -p ${STORE}/000050-livepatch_warn && cp /m/livepatch-warn.ko ${STORE}/000050-livepatch_warn/livepatch_warn.ko && cp /m/livepatch-warn.json ${STORE}/000050-livepatch_warn/manifest.json`,
    );
    const b = await sh('suture host boot-apply --timeout 60s');
    assert.equal(b.code, 0, b.out);
    assert.match(b.out, /livepatch_warn: skipped \(marked bad \(warn at /);
    assert.deepEqual(b.problems, [], 'no new WARN: the module was not loaded');
    assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_warn/);
    const a = await sh('suture apply /m/livepatch-warn.ko --manifest /m/livepatch-warn.json');
    assert.equal(a.code, 1, a.out);
    assert.match(a.out, /error\[HOST-PATCH-BAD\]: livepatch_warn is marked bad \(warn/);
  });

  test('a load the machine did not come back from: the attempt mark of another boot makes it bad', async () => {
    await sh(
      `mkdir -p ${STORE}/000060-livepatch_cmdline && cp /m/livepatch-cmdline.ko ${STORE}/000060-livepatch_cmdline/livepatch_cmdline.ko && cp /m/livepatch-cmdline.json ${STORE}/000060-livepatch_cmdline/manifest.json`,
    );
    await sh(
      `echo '{"patch":"livepatch_cmdline","bootId":"00000000-dead-4000-8000-000000000000","at":"2026-12-01T00:00:00.000Z"}' > ${GUARD}/attempt-livepatch_cmdline.json`,
    );
    const b = await sh('suture host boot-apply --timeout 60s');
    assert.match(b.out, /livepatch_cmdline: skipped \(marked bad \(no-return/);
    assert.equal(
      (await sh(`ls ${GUARD}`)).out.trim().split(/\s+/).sort().join(' '),
      'bad-livepatch_cmdline.json bad-livepatch_warn.json',
    );
    assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_cmdline/);
    // once the operator clears it, boot-apply loads it again
    const c = await sh('suture host clear-bad livepatch_cmdline');
    assert.equal(c.code, 0, c.out);
    const again = await sh('suture host boot-apply --timeout 60s');
    assert.match(again.out, /livepatch_cmdline: applied/);
    assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'this has been live patched');
    assert.equal((await sh('suture revert livepatch_cmdline')).code, 0);
  });

  test('kill switch: /etc/suture/mode no-apply loads nothing at boot; garbage is normal with a warning', async () => {
    await sh(
      `mkdir -p ${STORE}/000070-livepatch_cmdline && cp /m/livepatch-cmdline.ko ${STORE}/000070-livepatch_cmdline/livepatch_cmdline.ko && cp /m/livepatch-cmdline.json ${STORE}/000070-livepatch_cmdline/manifest.json`,
    );
    await sh('mkdir -p /etc/suture && echo no-apply > /etc/suture/mode');
    const b = await sh('suture host boot-apply --timeout 60s');
    assert.equal(b.code, 0, b.out);
    assert.match(
      b.out,
      /livepatch_cmdline: skipped \(suture.mode=no-apply \(from \/etc\/suture\/mode\): nothing is loaded\)/,
    );
    assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_cmdline/);
    const st = await sh('suture status');
    assert.match(st.out, /^mode: no-apply \(\/etc\/suture\/mode\): nothing is loaded/m);
    await sh("printf 'no-aply\\n' > /etc/suture/mode");
    const g = await sh('suture status --json');
    const s = JSON.parse(g.out.slice(g.out.indexOf('{')));
    assert.equal(s.mode.mode, 'normal');
    assert.match(s.mode.warning, /no-aply/);
  });
});

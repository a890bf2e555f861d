/*
 * The acceptance set of the other kernel lines, each in its exact kernel under QEMU:
 *   - 6.12.117+deb12-cloud-amd64 (Debian 12's 6.12, host gcc-12) and 6.12.117+deb13-cloud-amd64
 *     (Debian 13, gcc-14 in the trixie build root): `suture build` of the VmallocChunk diff, a module
 *     function with its module loaded before and after the livepatch (the scenarios of build.vm.test.ts,
 *     testing/build-scenarios.ts), and one session with `suture` inside the VM: the blog's hand-written
 *     cmdline_proc_show module applied, shown (with the kernel's own sysfs attributes) and reverted, a
 *     cumulative patch replacing it, the meminfo patch applied with its manifest;
 *   - on the deb13 kernel, the deb12 build of the same patch (same version, other build id) is refused
 *     before init_module;
 *   - the generic flavour 6.1.0-53-amd64: the blog's diff as shipped builds, verifies and loads.
 * Kernels and the build root are fetched when missing (SUTURE_FETCH_TESTS=1 in CI does it up front).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import type { KernelTarget } from '../kernel/target.js';
import { buildModule } from '../klp/kbuild.js';
import { bootVm, type VmSession } from '../vm/index.js';
import { type BuildResult, buildLivepatch } from './pipeline.js';
import { meminfoPatch, meminfoScenario, moduleScenario } from './testing/build-scenarios.js';

const BOOKWORM_612 = '6.12.117+deb12-cloud-amd64';
const TRIXIE_612 = '6.12.117+deb13-cloud-amd64';
const GENERIC_61 = '6.1.0-53-amd64';
const MEMINFO = resolve(process.cwd(), '..', 'shared', 'corpus', 'blog', 'meminfo-string.patch');
const HOST_TESTDATA = resolve(process.cwd(), 'src', 'host', 'testdata');
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

const dir = mkdtempSync(join(tmpdir(), 'suture-lines-vm-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The meminfo livepatch of `target`, built by the pipeline into `out` (module and manifest). */
function buildMeminfo(target: KernelTarget, out: string): Promise<BuildResult> {
  mkdirSync(out, { recursive: true });
  return buildLivepatch({
    diffPath: meminfoPatch(target, join(out, 'meminfo.patch')),
    release: target.release,
    name: 'meminfo',
    outDir: out,
  });
}

/** A hand-written module of src/host/testdata built by kbuild for target (its own toolchain). */
async function handWritten(target: KernelTarget, name: string, work: string): Promise<string> {
  const d = join(work, name);
  cpSync(join(HOST_TESTDATA, name), d, { recursive: true });
  return (await buildModule(d, target)).ko;
}

for (const release of [BOOKWORM_612, TRIXIE_612]) {
  describe(`the ${release} line`, { timeout: 1_800_000 }, () => {
    let target: KernelTarget;
    const work = join(dir, release);
    before(async () => {
      target = await ensureKernel(release);
    });

    test('`suture build` of the VmallocChunk diff loads and shows VMALLOCCHUNK until disabled', () =>
      meminfoScenario(target, meminfoPatch(target, join(dir, `${release}.patch`)), join(work, 'cli')));

    for (const order of ['before', 'after'] as const) {
      test(`a function in binfmt_misc, the module loaded ${order} the livepatch`, () =>
        moduleScenario(target, order, join(work, `module-${order}`)));
    }

    describe('suture inside the VM', () => {
      let vm: VmSession;
      // a build that fails fails its own tests below, not the hand-written modules' ones
      let meminfo: BuildResult | Error;
      let foreign: BuildResult | Error | undefined;
      const built = (b: BuildResult | Error | undefined): BuildResult => {
        if (b instanceof Error) throw b;
        assert.ok(b?.ko && b.manifestPath, 'built');
        return b;
      };
      const sh = async (cmd: string) => {
        const r = await vm.exec(cmd, { timeoutMs: 120_000 });
        assert.equal(r.problems.length, 0, `kernel problem during ${cmd}: ${JSON.stringify(r.problems)}`);
        return { code: r.exitCode, out: r.output.replace(ANSI, '').replaceAll('\r', '\n') };
      };
      before(async () => {
        const files = [
          { from: await handWritten(target, 'livepatch-cmdline', work), to: '/m/livepatch-cmdline.ko' },
          { from: await handWritten(target, 'livepatch-cumulative', work), to: '/m/livepatch-cumulative.ko' },
        ];
        meminfo = await buildMeminfo(target, join(work, 'session')).catch((e: Error) => e);
        if (!(meminfo instanceof Error))
          files.push(
            { from: meminfo.ko!, to: '/m/livepatch-meminfo.ko' },
            { from: meminfo.manifestPath!, to: '/m/meminfo.json' },
          );
        if (release === TRIXIE_612) {
          // the same patch built for Debian 12's build of the same 6.12.117
          const deb12 = await ensureKernel(BOOKWORM_612);
          foreign = await buildMeminfo(deb12, join(work, 'deb12')).catch((e: Error) => e);
          if (!(foreign instanceof Error))
            files.push(
              { from: foreign.ko!, to: '/m/deb12/livepatch-meminfo.ko' },
              { from: foreign.manifestPath!, to: '/m/deb12/meminfo.json' },
            );
        }
        vm = await bootVm({ kernel: target, files, withSuture: true, timeoutMs: 1_800_000 });
      });
      after(async () => {
        await vm?.close();
      });

      test("the blog's cmdline module: apply, status with the kernel's attributes, revert", async () => {
        const original = (await sh('cat /proc/cmdline')).out.trim();
        const a = await sh('suture apply /m/livepatch-cmdline.ko --timeout 60s');
        assert.equal(a.code, 0, a.out);
        assert.match(a.out, /applied livepatch_cmdline: transition took [\d.]+ s/);
        assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'this has been live patched');
        const st = await sh('suture status');
        assert.match(st.out, /livepatch_cmdline\n\s+state: active\n\s+patches vmlinux: cmdline_proc_show,1/);
        // 6.12 has `replace` per patch and `patched` per object; stack_order only from 6.13
        assert.match(st.out, /^\s+sysfs: replace 0, vmlinux patched 1$/m);
        const json = JSON.parse((await sh('suture status --json')).out.replace(/^[^{]*/, ''));
        const p = json.patches.find((x: { name: string }) => x.name === 'livepatch_cmdline');
        assert.equal(p.replace, false);
        assert.equal(p.stackOrder, undefined);
        assert.equal((await sh('suture revert livepatch_cmdline')).code, 0);
        assert.equal((await sh('cat /proc/cmdline')).out.trim(), original);
      });

      test('a cumulative patch replaces the first one', async () => {
        assert.equal((await sh('suture apply /m/livepatch-cmdline.ko')).code, 0);
        const c = await sh('suture apply /m/livepatch-cumulative.ko');
        assert.equal(c.code, 0, c.out);
        assert.match(c.out, /livepatch_cumulative: cumulative patch replaced livepatch_cmdline/);
        assert.equal((await sh('cat /proc/cmdline')).out.trim(), 'cumulative patch v2 in effect');
        assert.match(
          (await sh('suture list')).out,
          /^livepatch_cumulative\tactive\t.*\treplace 1, vmlinux patched 1$/m,
        );
        assert.equal((await sh('suture revert livepatch_cmdline')).code, 0);
        assert.equal((await sh('suture revert livepatch_cumulative')).code, 0);
        assert.doesNotMatch((await sh('cat /proc/modules')).out, /livepatch_/);
      });

      test('the built meminfo patch applied with its manifest: the build id verified', async () => {
        built(meminfo);
        const a = await sh('suture apply /m/livepatch-meminfo.ko --manifest /m/meminfo.json --timeout 60s');
        assert.equal(a.code, 0, a.out);
        assert.match(a.out, new RegExp(`verified .*vmlinux build id ${target.buildId}`));
        assert.match((await sh('grep -i chunk /proc/meminfo')).out, /VMALLOCCHUNK:/);
        assert.equal((await sh('suture revert livepatch_meminfo')).code, 0);
        assert.match((await sh('grep -i chunk /proc/meminfo')).out, /VmallocChunk:/);
      });

      test('the deb12 build of the same patch is refused before init_module', {
        skip: release !== TRIXIE_612,
      }, async () => {
        assert.notEqual(built(foreign).manifest?.kernel.buildId, target.buildId, 'two builds of 6.12.117');
        const modsBefore = (await sh('cat /proc/modules')).out;
        const dmesgBefore = Number((await sh('dmesg | wc -l')).out.trim());
        const r = await sh('suture apply /m/deb12/livepatch-meminfo.ko --manifest /m/deb12/meminfo.json');
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, /error\[HOST-(KERNEL|BUILD-ID)-MISMATCH\]/);
        assert.equal((await sh('cat /proc/modules')).out, modsBefore, 'no module was loaded');
        const fresh = (await sh(`dmesg | tail -n +${dmesgBefore + 1}`)).out;
        assert.doesNotMatch(fresh, /livepatch|module|taint|version magic/i, 'init_module was never called');
      });
    });
  });
}

describe(`the generic flavour ${GENERIC_61}`, { timeout: 900_000 }, () => {
  test('the blog diff as shipped builds, verifies against the generic vmlinux and loads', async () => {
    const target = await ensureKernel(GENERIC_61);
    await meminfoScenario(target, MEMINFO, join(dir, 'generic'));
  });
});

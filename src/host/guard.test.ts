/*
 * The kill switch and the crash-loop guard against the fake kernel: the mode from the command line or
 * /etc/suture/mode (garbage → normal with a warning), boot-apply under no-apply/stop, a patch whose
 * load is followed by a WARN or oops marked bad with its kernel log, a machine that did not come back
 * after a load (attempt mark from another boot), bad marks written half way, clear-bad.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import {
  applyLivepatch,
  badPatches,
  bootApply,
  clearBad,
  guardDir,
  hostStatus,
  listLivepatches,
  readMode,
  statusText,
  storePatch,
} from './index.js';
import { FakeKernel, fakeManifest } from './testing/fake-kernel.js';

const kernels: FakeKernel[] = [];
function fake(): FakeKernel {
  const k = new FakeKernel({ signalEvery: 5, tickMs: 10 });
  kernels.push(k);
  return k;
}
afterEach(() => {
  for (const k of kernels.splice(0)) k.dispose();
});

const fast = { pollMs: 10, scanMs: 30, signalPeriodMs: 100, settleMs: 30, timeoutMs: 3000 };

function patchOn(k: FakeKernel, name: string): { file: string; manifest: ReturnType<typeof fakeManifest> } {
  k.specs.set(name, { objects: { vmlinux: ['meminfo_proc_show'] } });
  const file = k.writeModule(name);
  return { file, manifest: fakeManifest(k, file, name) };
}

function setCmdline(k: FakeKernel, line: string): void {
  writeFileSync(join(k.roots.proc, 'cmdline'), `${line}\n`);
}
function setModeFile(k: FakeKernel, text: string): void {
  mkdirSync(k.roots.config, { recursive: true });
  writeFileSync(join(k.roots.config, 'mode'), text);
}

const WARN = [
  '------------[ cut here ]------------',
  'WARNING: CPU: 0 PID: 812 at livepatch_warn.c:21 livepatch_warn_init+0x1d/0x30 [livepatch_warn]',
  'Modules linked in: livepatch_warn(OEK+)',
  'Call Trace:\x1b[0m',
  '---[ end trace 0000000000000000 ]---',
].join('\n');

async function refused(p: Promise<unknown>, code: string): Promise<import('../diagnostic.js').SutureError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isSutureError(e), String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('kill switch', () => {
  test('nothing set: normal, from the default', () => {
    const k = fake();
    assert.deepEqual(readMode(k.roots), { mode: 'normal', source: 'default' });
  });
  test('the kernel command line wins over the file', () => {
    const k = fake();
    setModeFile(k, 'no-refresh\n');
    assert.equal(readMode(k.roots).mode, 'no-refresh');
    assert.equal(readMode(k.roots).source, 'file');
    setCmdline(k, 'root=/dev/vda ro suture.mode=stop quiet');
    const m = readMode(k.roots);
    assert.equal(m.mode, 'stop');
    assert.equal(m.source, 'cmdline');
  });
  test('garbage in the file or on the command line is normal, with a warning, never a crash', () => {
    const k = fake();
    setModeFile(k, '\u0000\u00ff no-aply\n\n');
    const m = readMode(k.roots);
    assert.equal(m.mode, 'normal');
    assert.match(m.warning ?? '', /not one of normal, no-apply, no-refresh, stop/);
    assert.match(statusText(hostStatus(k.roots)), /mode: normal .*\n {2}warning: /);
    setCmdline(k, 'suture.mode=');
    assert.equal(readMode(k.roots).mode, 'normal');
    assert.equal(readMode(k.roots).source, 'cmdline');
    assert.ok(readMode(k.roots).warning);
  });
  for (const mode of ['no-apply', 'stop'] as const) {
    test(`boot-apply under ${mode} loads nothing and says why`, async () => {
      const k = fake();
      const { file, manifest } = patchOn(k, 'livepatch_meminfo');
      storePatch(k.roots, file, manifest);
      setCmdline(k, `ro suture.mode=${mode}`);
      const out = await bootApply({ roots: k.roots, ...fast });
      assert.equal(out[0]?.action, 'skipped');
      assert.match(
        out[0]?.reason ?? '',
        new RegExp(`suture.mode=${mode} \\(from the kernel command line\\)`),
      );
      assert.deepEqual(k.calls, []);
      assert.match(
        statusText(hostStatus(k.roots)),
        new RegExp(`mode: ${mode} \\(kernel command line\\): nothing is loaded`),
      );
    });
  }
  test('boot-apply under no-refresh still loads (only the agent stops checking in)', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_meminfo');
    storePatch(k.roots, file, manifest);
    setModeFile(k, 'no-refresh');
    const out = await bootApply({ roots: k.roots, ...fast });
    assert.equal(out[0]?.action, 'applied');
  });
});

describe('crash-loop guard', () => {
  test('a clean load leaves no mark', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_meminfo');
    await applyLivepatch({ module: file, manifest, roots: k.roots, ...fast });
    assert.deepEqual(badPatches(k.roots), []);
    assert.deepEqual(existsSync(guardDir(k.roots)) ? readdirSync(guardDir(k.roots)) : [], []);
  });

  test('a WARN right after the load: marked bad with the log, refused again, skipped at boot', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_warn');
    k.warnAfterLoad.set('livepatch_warn', WARN);
    const e = await refused(
      applyLivepatch({ module: file, manifest, roots: k.roots, persist: true, ...fast }),
      'HOST-PATCH-BAD',
    );
    assert.match(e.message, /logged a WARN right after/);
    const [mark] = badPatches(k.roots);
    assert.equal(mark?.patch, 'livepatch_warn');
    assert.equal(mark?.reason, 'warn');
    assert.match(mark?.kernelLog ?? '', /WARNING: CPU: 0 PID: 812 at livepatch_warn\.c:21/);
    const controls = [...(mark?.kernelLog ?? '')].filter((c) => c.charCodeAt(0) < 32 && c !== '\n');
    assert.deepEqual(controls, [], 'control characters stripped');
    assert.ok(!readdirSync(guardDir(k.roots)).some((n) => n.startsWith('attempt-')), 'attempt mark cleared');
    const text = statusText(hostStatus(k.roots));
    assert.match(text, /marked bad by the crash-loop guard:\n {2}livepatch_warn: warn at /);
    assert.match(text, /kernel: WARNING: CPU: 0 PID: 812/);

    k.reboot();
    k.warnAfterLoad.clear();
    storePatch(k.roots, file, manifest);
    const boot = await bootApply({ roots: k.roots, ...fast });
    assert.deepEqual(
      boot.map((b) => [b.patch, b.action]),
      [['livepatch_warn', 'skipped']],
    );
    assert.match(boot[0]?.reason ?? '', /marked bad \(warn/);
    assert.ok(!k.calls.slice(1).some((c) => c.startsWith('insmod')), 'never loaded after the reboot');
    await refused(applyLivepatch({ module: file, manifest, roots: k.roots, ...fast }), 'HOST-PATCH-BAD');
  });

  test('an oops in the log during a failed load is still bad (oops wins over warn)', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_oops');
    k.failing.set('livepatch_oops', 'BUG: kernel NULL pointer dereference, address: 0000000000000008');
    await refused(applyLivepatch({ module: file, manifest, roots: k.roots, ...fast }), 'HOST-PATCH-BAD');
    assert.equal(badPatches(k.roots)[0]?.reason, 'oops');
  });

  test('a load refused without trouble in the log is not bad', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_nosym');
    k.failing.set('livepatch_nosym', "livepatch: symbol 'x' not found in symbol table");
    await refused(applyLivepatch({ module: file, manifest, roots: k.roots, ...fast }), 'HOST-LOAD-FAILED');
    assert.deepEqual(badPatches(k.roots), []);
  });

  test('the machine did not come back: the attempt mark of the last boot makes the patch bad', async () => {
    const k = fake();
    const dead = patchOn(k, 'livepatch_hang');
    const fine = patchOn(k, 'livepatch_fine');
    storePatch(k.roots, dead.file, dead.manifest);
    storePatch(k.roots, fine.file, fine.manifest);
    // what guardedLoad writes before insmod, left behind because the machine died during the load
    mkdirSync(guardDir(k.roots), { recursive: true });
    const before = readFileSync(join(k.roots.proc, 'sys/kernel/random/boot_id'), 'utf8').trim();
    writeFileSync(
      join(guardDir(k.roots), 'attempt-livepatch_hang.json'),
      JSON.stringify({ patch: 'livepatch_hang', bootId: before, at: '2026-12-01T00:00:00.000Z' }),
    );
    assert.deepEqual(badPatches(k.roots), [], 'same boot: the load may still be running');
    k.reboot();
    assert.equal(badPatches(k.roots)[0]?.reason, 'no-return', 'status sees it before boot-apply runs');
    const out = await bootApply({ roots: k.roots, ...fast });
    assert.deepEqual(
      out.map((b) => [b.patch, b.action]),
      [
        ['livepatch_hang', 'skipped'],
        ['livepatch_fine', 'applied'],
      ],
    );
    assert.deepEqual(readdirSync(guardDir(k.roots)).sort(), ['bad-livepatch_hang.json']);
    assert.deepEqual(
      listLivepatches(k.roots).map((p) => p.name),
      ['livepatch_fine'],
    );
  });

  test('a bad mark written half way keeps the patch bad', async () => {
    const k = fake();
    const { file, manifest } = patchOn(k, 'livepatch_torn');
    mkdirSync(guardDir(k.roots), { recursive: true });
    writeFileSync(join(guardDir(k.roots), 'bad-livepatch_torn.json'), '{"patch":"livepatch_torn","rea');
    assert.equal(badPatches(k.roots)[0]?.reason, 'no-return');
    assert.match(badPatches(k.roots)[0]?.note ?? '', /written half way/);
    await refused(applyLivepatch({ module: file, manifest, roots: k.roots, ...fast }), 'HOST-PATCH-BAD');

    const other = patchOn(k, 'livepatch_staged');
    writeFileSync(join(guardDir(k.roots), '.bad-livepatch_staged.json.tmp-4242'), '');
    await refused(
      applyLivepatch({ module: other.file, manifest: other.manifest, roots: k.roots, ...fast }),
      'HOST-PATCH-BAD',
    );
    assert.ok(clearBad(k.roots, 'livepatch_staged'));
    await applyLivepatch({ module: other.file, manifest: other.manifest, roots: k.roots, ...fast });
    assert.deepEqual(
      badPatches(k.roots).map((b) => b.patch),
      ['livepatch_torn'],
    );
  });
});

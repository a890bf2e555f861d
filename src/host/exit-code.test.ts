/*
 * `suture status` exit codes over a fake sysfs tree, one test per state: 0 applied, 1 none,
 * 2 available but not applied, 3 unsupported or upgrade required, 4 a patch marked bad.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { applyLivepatch, guardDir, hostStatus, statusExitCode, statusVerdict, storePatch } from './index.js';
import { FakeKernel, type FakeKernelOptions, fakeManifest } from './testing/fake-kernel.js';

const kernels: FakeKernel[] = [];
function fake(o: FakeKernelOptions = {}): FakeKernel {
  const k = new FakeKernel({ tickMs: 10, ...o });
  kernels.push(k);
  return k;
}
afterEach(() => {
  for (const k of kernels.splice(0)) k.dispose();
});
const fast = { pollMs: 10, scanMs: 30, settleMs: 10, timeoutMs: 3000 };

function patchOn(k: FakeKernel, name: string) {
  k.specs.set(name, { objects: { vmlinux: ['meminfo_proc_show'] } });
  const file = k.writeModule(name);
  return { file, manifest: fakeManifest(k, file, name) };
}

const verdict = (k: FakeKernel) => {
  const s = hostStatus(k.roots);
  return [statusVerdict(s), statusExitCode(s)];
};

describe('suture status exit codes', () => {
  test('0: every stored patch for this kernel is applied', async () => {
    const k = fake();
    const p = patchOn(k, 'livepatch_meminfo');
    await applyLivepatch({ module: p.file, manifest: p.manifest, roots: k.roots, persist: true, ...fast });
    assert.deepEqual(verdict(k), ['applied', 0]);
  });
  test('1: nothing applied and nothing available', () => {
    assert.deepEqual(verdict(fake()), ['none', 1]);
  });
  test('2: a patch stored for this kernel is not applied', async () => {
    const k = fake();
    const a = patchOn(k, 'livepatch_a');
    const b = patchOn(k, 'livepatch_b');
    await applyLivepatch({ module: a.file, manifest: a.manifest, roots: k.roots, persist: true, ...fast });
    storePatch(k.roots, b.file, b.manifest);
    assert.deepEqual(verdict(k), ['available', 2]);
  });
  test('3: the kernel has no livepatch support', () => {
    assert.deepEqual(verdict(fake({ livepatch: false })), ['unsupported', 3]);
  });
  test('3: only patches for another kernel (upgrade required)', () => {
    const k = fake();
    const file = k.writeModule('livepatch_old');
    storePatch(k.roots, file, fakeManifest(k, file, 'livepatch_old', { buildId: 'b'.repeat(40) }));
    assert.deepEqual(verdict(k), ['kernel-upgrade-required', 3]);
  });
  test('4: a patch marked bad wins over an applied one', async () => {
    const k = fake();
    const p = patchOn(k, 'livepatch_meminfo');
    await applyLivepatch({ module: p.file, manifest: p.manifest, roots: k.roots, persist: true, ...fast });
    mkdirSync(guardDir(k.roots), { recursive: true });
    writeFileSync(
      join(guardDir(k.roots), 'bad-livepatch_other.json'),
      JSON.stringify({ patch: 'livepatch_other', reason: 'oops', kernelLog: 'Oops: 0002', at: 'x' }),
    );
    assert.deepEqual(verdict(k), ['bad', 4]);
  });
});

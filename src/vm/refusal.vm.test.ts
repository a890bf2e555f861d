// Issue 2 acceptance: a module built for another kernel is refused by the kernel, and the harness says
// why in the kernel's words (not a timeout, not a bare exit status).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from './run.js';
import { buildTestModule, CMDLINE_LIVEPATCH, withSymbolCrc, withVermagic } from './testing/fixtures.js';

let kernel: KernelTarget;
let work: string;

before(async () => {
  kernel = await ensureKernel(defaultRelease());
  work = mkdtempSync(join(tmpdir(), 'suture-vm-refusal-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

it('a module built for another release is refused, with the kernel reason in the result', async () => {
  const ko = buildTestModule(kernel, join(work, 'lp'), 'lp_other', CMDLINE_LIVEPATCH);
  // Debian 11's kernel configuration string: what a module built against bullseye's headers carries
  const original = withVermagic(
    ko,
    join(work, 'lp_vermagic.ko'),
    '5.10.0-30-cloud-amd64 SMP mod_unload modversions ',
  );
  assert.match(original, new RegExp(`^${kernel.release.replace(/[.]/g, '\\.')} `));
  // a kernel whose module ABI differs: module_layout's CRC does not match
  withSymbolCrc(ko, join(work, 'lp_crc.ko'), 'module_layout');
  const script = `
insmod /lp_vermagic.ko && exit 10
insmod /lp_crc.ko && exit 11
grep -c '^lp_other ' /proc/modules
exit 1
`;
  const r = await runInVm({
    kernel,
    script,
    files: [{ from: join(work, 'lp_vermagic.ko') }, { from: join(work, 'lp_crc.ko') }],
    timeoutMs: 180_000,
  });
  assert.equal(r.outcome, 'script-failed', r.message);
  assert.equal(r.exitCode, 1, `${r.output}`);
  assert.match(r.output, /invalid module format/i, 'insmod reports the refusal');
  assert.match(r.output, /^0$/m, 'nothing was loaded');
  const reasons = r.moduleRefusals.map((x) => `${x.module}: ${x.reason}`);
  assert.ok(
    reasons.some((x) =>
      /^lp_other: version magic '5\.10\.0-30-cloud-amd64 SMP mod_unload modversions ' should be '6\.1\./.test(
        x,
      ),
    ),
    reasons.join('\n'),
  );
  assert.ok(
    reasons.includes('lp_other: disagrees about version of symbol module_layout'),
    reasons.join('\n'),
  );
  assert.match(r.message, /version magic/);
  assert.match(r.message, /disagrees about version of symbol module_layout/);
  assert.deepEqual(r.problems, []);
});

// Issue 2 acceptance: a script that crashes the kernel is a failure carrying the kernel's own report:
// a panic (sysrq c) ends the VM at once; an oops in a module is reported while the VM lives on.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from './run.js';
import { buildTestModule, OOPS_MODULE, WARN_MODULE } from './testing/fixtures.js';

let kernel: KernelTarget;
let work: string;

before(async () => {
  kernel = await ensureKernel(defaultRelease());
  work = mkdtempSync(join(tmpdir(), 'suture-vm-oops-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

it('echo c > /proc/sysrq-trigger is reported as a panic with its trace, not a timeout', async () => {
  const r = await runInVm({
    kernel,
    script: 'echo about-to-crash\necho c > /proc/sysrq-trigger\necho survived\n',
    timeoutMs: 120_000,
  });
  assert.equal(r.outcome, 'panic', r.message);
  assert.equal(r.exitCode, null);
  assert.equal(r.output, 'about-to-crash\n', 'output up to the crash is kept');
  const p = r.problems.find((x) => x.kind === 'panic');
  assert.ok(p, JSON.stringify(r.problems));
  assert.match(p.title, /Kernel panic - not syncing: sysrq triggered crash/);
  assert.match(p.trace, /Call Trace:/);
  assert.match(p.trace, /sysrq_handle_crash/);
  assert.match(r.message, /sysrq triggered crash/);
});

it('an oops in a module fails the run with the oops text while the VM keeps running', async () => {
  const ko = buildTestModule(kernel, join(work, 'oops'), 'suture_oops', OOPS_MODULE);
  const r = await runInVm({
    kernel,
    script: 'insmod /suture_oops.ko; echo "insmod status $?"; echo still-alive\n',
    files: [{ from: ko }],
    timeoutMs: 120_000,
  });
  assert.equal(r.outcome, 'oops', r.message);
  assert.equal(r.exitCode, 0, 'the script itself finished');
  assert.match(r.output, /still-alive/);
  const oops = r.problems.find((x) => x.kind === 'oops');
  assert.ok(oops, JSON.stringify(r.problems.map((x) => x.title)));
  assert.match(oops.trace, /oops_init/);
  assert.match(r.problems.map((x) => x.title).join('\n'), /BUG: kernel NULL pointer dereference/);
  assert.match(r.kernelLog, /suture_oops: about to write through 0000000000000000/);
});

it('a WARNING splat fails the run as a warning, with its trace', async () => {
  const ko = buildTestModule(kernel, join(work, 'warn'), 'suture_warn', WARN_MODULE);
  const r = await runInVm({
    kernel,
    script: 'insmod /suture_warn.ko && echo loaded\n',
    files: [{ from: ko }],
    timeoutMs: 120_000,
  });
  assert.equal(r.outcome, 'warning', r.message);
  assert.equal(r.exitCode, 0);
  assert.equal(r.output, 'loaded\n');
  const w = r.problems.find((x) => x.kind === 'warning');
  assert.ok(w, JSON.stringify(r.problems.map((x) => x.title)));
  assert.match(w.title, /^WARNING: CPU: \d+ PID: \d+ at .*suture_warn/);
  assert.match(w.trace, /warn_init/);
  assert.match(w.trace, /---\[ end trace/);
});

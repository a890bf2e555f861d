// Issue 2 acceptance: the blog's first livepatch (replace cmdline_proc_show), built by `suture new` +
// `suture module build`, loaded in a VM running the exact target kernel: /proc/cmdline changes, the
// transition completes, disabling brings the original back, the module unloads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, it } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../kernel/target.js';
import { runInVm } from './run.js';
import { repoRoot } from './suture-files.js';

let kernel: KernelTarget;
let work: string;

before(async () => {
  kernel = await ensureKernel(defaultRelease());
  work = mkdtempSync(join(tmpdir(), 'suture-vm-livepatch-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** The module exactly as an operator makes it: `suture new` then `suture module build`. */
function buildBlogModule(): string {
  const cli = join(repoRoot(), 'bin', 'suture.js');
  const dir = join(work, 'livepatch_cmdline');
  for (const args of [
    ['new', dir, '--function', 'cmdline_proc_show'],
    ['module', 'build', dir, '--kernel', kernel.release],
  ]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `suture ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  }
  const kos = readdirSync(dir).filter((f) => f.endsWith('.ko'));
  assert.equal(kos.length, 1, `expected one .ko in ${dir}: ${kos.join(' ')}`);
  return join(dir, kos[0]!);
}

it('the blog livepatch changes /proc/cmdline, completes its transition, reverts and unloads', async () => {
  const ko = buildBlogModule();
  const name = basename(ko, '.ko');
  const script = `
set -e
echo "before=$(cat /proc/cmdline)"
insmod /${name}.ko
echo "patched=$(cat /proc/cmdline)"
d=/sys/kernel/livepatch/${name}
i=0; while [ "$(cat $d/transition)" != 0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "transition=$(cat $d/transition)"
echo "enabled=$(cat $d/enabled)"
echo 0 > $d/enabled
i=0; while [ -d $d ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "after=$(cat /proc/cmdline)"
rmmod ${name}
echo "loaded=$(grep -c "^${name} " /proc/modules || true)"
`;
  const r = await runInVm({
    kernel,
    script,
    files: [{ from: ko }],
    append: 'suture.test=blog-cmdline',
    timeoutMs: 240_000,
  });
  const lines = Object.fromEntries(
    r.output
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.equal(r.outcome, 'ok', `${r.message}\n${r.output}\n${r.kernelLog.slice(-3000)}`);
  assert.match(lines.before ?? '', /suture\.test=blog-cmdline/);
  assert.equal(lines.patched, 'this has been live patched');
  assert.equal(lines.transition, '0');
  assert.equal(lines.enabled, '1');
  assert.equal(lines.after, lines.before, 'disabling the patch brings the original output back');
  assert.equal(lines.loaded, '0', 'the module unloaded');
  assert.match(r.kernelLog, new RegExp(`livepatch: '${name}': patching complete`));
  assert.match(r.kernelLog, new RegExp(`livepatch: '${name}': unpatching complete`));
  assert.deepEqual(r.problems, []);
});

// `suture vm run` end to end: the script's output on stdout, its exit status as the command's, added
// files at /<basename>, a kernel panic turned into a failing status with the trace on stderr.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { repoRoot } from './suture-files.js';

let work: string;
const cli = join(repoRoot(), 'bin', 'suture.js');

before(async () => {
  await ensureKernel(defaultRelease());
  work = mkdtempSync(join(tmpdir(), 'suture-vm-cli-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

function suture(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });
}

it('suture vm run prints the output and exits with the script status', () => {
  writeFileSync(join(work, 'data.txt'), 'payload 42\n');
  writeFileSync(join(work, 'script.sh'), 'cat /data.txt\nuname -r\nexit 3\n');
  const r = suture(
    'vm',
    'run',
    '--kernel',
    defaultRelease(),
    '--script',
    join(work, 'script.sh'),
    '--add',
    join(work, 'data.txt'),
  );
  assert.equal(r.status, 3, r.stderr);
  assert.equal(r.stdout, `payload 42\n${defaultRelease()}\n`);
  assert.match(r.stderr, /script-failed: script exited with status 3/);
});

it('suture vm run fails on a kernel panic and shows the trace', () => {
  writeFileSync(join(work, 'crash.sh'), 'echo c > /proc/sysrq-trigger\n');
  const r = suture('vm', 'run', '--script', join(work, 'crash.sh'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /panic: kernel panic: Kernel panic - not syncing: sysrq triggered crash/);
  assert.match(r.stderr, /Call Trace:/);
});

it('suture vm run refuses a missing script with a diagnostic', () => {
  const r = suture('vm', 'run', '--script', join(work, 'nope.sh'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error\[VM-SCRIPT-MISSING\]/);
});

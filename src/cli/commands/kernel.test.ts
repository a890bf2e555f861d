/*
 * `suture kernel info` as data (kernelInfo): a 6.12 target's suite comes from its name, its compiler
 * from its config, and the verdict carries every code generation option with what it asks of a
 * livepatch; `suture kernel list` refuses a suite or flavour Suture does not target before asking apt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import type { SutureError } from '../../diagnostic.js';
import type { KernelTarget } from '../../kernel/target.js';
import { kernelInfo, register } from './kernel.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-kernelinfo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('kernel info of a trixie 6.12 target: suite, compiler, verdict and the meaning of IBT and friends', () => {
  const config = join(dir, 'config');
  writeFileSync(
    config,
    [
      'CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"',
      'CONFIG_LIVEPATCH=y',
      'CONFIG_DYNAMIC_FTRACE_WITH_ARGS=y',
      'CONFIG_HAVE_RELIABLE_STACKTRACE=y',
      'CONFIG_UNWINDER_ORC=y',
      'CONFIG_X86_KERNEL_IBT=y',
      'CONFIG_CALL_PADDING=y',
      'CONFIG_PREFIX_SYMBOLS=y',
      'CONFIG_MITIGATION_CALL_DEPTH_TRACKING=y',
      'CONFIG_MITIGATION_RETHUNK=y',
      '',
    ].join('\n'),
  );
  const t: KernelTarget = {
    release: '6.12.999+deb13-cloud-amd64', // never cached: no record, everything from name and config
    debianVersion: '6.12.999-1',
    buildId: 'ab'.repeat(20),
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    config,
    modulesDir: dir,
    vmlinux: join(dir, 'vmlinux'),
    debugModulesDir: dir,
    sourceTree: dir,
    moduleSymvers: join(dir, 'Module.symvers'),
  };
  const info = kernelInfo(t);
  assert.equal(info.suite, 'trixie');
  assert.equal(info.compiler, 'x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0');
  assert.equal(info.verdict, 'supported');
  const on = info.codegen.filter((c) => c.on).map((c) => c.name);
  assert.deepEqual(on, [
    'X86_KERNEL_IBT',
    'CALL_PADDING',
    'PREFIX_SYMBOLS',
    'MITIGATION_CALL_DEPTH_TRACKING',
    'MITIGATION_RETHUNK',
  ]);
  assert.ok(info.codegen.every((c) => c.what.length > 0 && c.livepatch.length > 0));
  assert.equal(info.codegen.find((c) => c.name === 'MITIGATION_SRSO')?.on, false);
});

test('kernel list refuses a suite or flavour Suture does not target', async () => {
  for (const args of [
    ['--suite', 'sid'],
    ['--flavour', 'rt-amd64'],
  ]) {
    const program = new Command().exitOverride();
    register(program);
    await assert.rejects(program.parseAsync(['node', 'suture', 'kernel', 'list', ...args]), (e: unknown) =>
      ['CLI-BAD-SUITE', 'CLI-BAD-FLAVOUR'].includes((e as SutureError).code),
    );
  }
});

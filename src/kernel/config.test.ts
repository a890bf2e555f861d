/*
 * The livepatch verdict from a kernel config: supported, partial (no reliable stack traces) or
 * unsupported (no livepatch core, no ftrace with regs/args, forced module signatures).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { livepatchVerdict, parseKernelConfig } from './config.js';

const DEBIAN = `CONFIG_LIVEPATCH=y
CONFIG_DYNAMIC_FTRACE_WITH_REGS=y
CONFIG_DYNAMIC_FTRACE_WITH_ARGS=y
CONFIG_HAVE_RELIABLE_STACKTRACE=y
CONFIG_UNWINDER_ORC=y
# CONFIG_MODULE_SIG_FORCE is not set
CONFIG_LOCALVERSION=""
`;

test('config lines parse, "is not set" becomes n', () => {
  const c = parseKernelConfig(DEBIAN);
  assert.equal(c.get('LIVEPATCH'), 'y');
  assert.equal(c.get('MODULE_SIG_FORCE'), 'n');
  assert.equal(c.get('LOCALVERSION'), '""');
});

test("Debian's cloud config is supported", () => {
  const v = livepatchVerdict(parseKernelConfig(DEBIAN));
  assert.equal(v.verdict, 'supported');
  assert.ok(v.options.every((o) => o.ok));
  assert.deepEqual(
    v.options.map((o) => o.name),
    [
      'LIVEPATCH',
      'DYNAMIC_FTRACE_WITH_REGS',
      'DYNAMIC_FTRACE_WITH_ARGS',
      'HAVE_RELIABLE_STACKTRACE',
      'UNWINDER_ORC',
      'MODULE_SIG_FORCE',
    ],
  );
});

test('either ftrace flavour suffices', () => {
  const v = livepatchVerdict(parseKernelConfig(DEBIAN.replace('CONFIG_DYNAMIC_FTRACE_WITH_REGS=y', '')));
  assert.equal(v.verdict, 'supported');
});

test('no livepatch core, no ftrace, or forced signatures: unsupported, with the reason', () => {
  const noLp = livepatchVerdict(
    parseKernelConfig(DEBIAN.replace('CONFIG_LIVEPATCH=y', '# CONFIG_LIVEPATCH is not set')),
  );
  assert.equal(noLp.verdict, 'unsupported');
  assert.match(noLp.reasons.join('\n'), /LIVEPATCH/);
  const noFtrace = livepatchVerdict(
    parseKernelConfig(DEBIAN.replace(/CONFIG_DYNAMIC_FTRACE_WITH_(REGS|ARGS)=y\n/g, '')),
  );
  assert.equal(noFtrace.verdict, 'unsupported');
  const sig = livepatchVerdict(
    parseKernelConfig(DEBIAN.replace('# CONFIG_MODULE_SIG_FORCE is not set', 'CONFIG_MODULE_SIG_FORCE=y')),
  );
  assert.equal(sig.verdict, 'unsupported');
  assert.match(sig.reasons.join('\n'), /signed/);
});

test('without reliable stack traces the verdict is partial', () => {
  const v = livepatchVerdict(parseKernelConfig(DEBIAN.replace('CONFIG_HAVE_RELIABLE_STACKTRACE=y', '')));
  assert.equal(v.verdict, 'partial');
  assert.match(v.reasons.join('\n'), /force/);
});

const K612 = `${DEBIAN}CONFIG_X86_KERNEL_IBT=y
CONFIG_CALL_PADDING=y
CONFIG_PREFIX_SYMBOLS=y
CONFIG_MITIGATION_RETPOLINE=y
CONFIG_MITIGATION_RETHUNK=y
CONFIG_MITIGATION_CALL_DEPTH_TRACKING=y
CONFIG_MITIGATION_SRSO=y
CONFIG_MITIGATION_ITS=y
`;

test('a 6.12 config: still supported, and every code generation option it turns on is named with its meaning', () => {
  const v = livepatchVerdict(parseKernelConfig(K612));
  assert.equal(v.verdict, 'supported');
  const on = v.codegen.filter((c) => c.on).map((c) => c.name);
  assert.deepEqual(on.sort(), [
    'CALL_PADDING',
    'MITIGATION_CALL_DEPTH_TRACKING',
    'MITIGATION_ITS',
    'MITIGATION_RETHUNK',
    'MITIGATION_RETPOLINE',
    'MITIGATION_SRSO',
    'PREFIX_SYMBOLS',
    'X86_KERNEL_IBT',
  ]);
  const ibt = v.codegen.find((c) => c.name === 'X86_KERNEL_IBT');
  assert.match(ibt?.livepatch ?? '', /endbr64/);
  assert.match(v.codegen.find((c) => c.name === 'PREFIX_SYMBOLS')?.livepatch ?? '', /__pfx_/);
  assert.match(v.codegen.find((c) => c.name === 'MITIGATION_RETHUNK')?.livepatch ?? '', /\.return_sites/);
  assert.match(
    v.codegen.find((c) => c.name === 'MITIGATION_CALL_DEPTH_TRACKING')?.livepatch ?? '',
    /\.call_sites/,
  );
  assert.ok(v.reasons.some((r) => r.includes('X86_KERNEL_IBT')));
});

test("6.1's older option names count (RETHUNK, CPU_SRSO, RETPOLINE); absent options are off", () => {
  const v = livepatchVerdict(
    parseKernelConfig(
      `${DEBIAN}# CONFIG_X86_KERNEL_IBT is not set\nCONFIG_RETPOLINE=y\nCONFIG_RETHUNK=y\nCONFIG_CPU_SRSO=y\n`,
    ),
  );
  const by = new Map(v.codegen.map((c) => [c.name, c]));
  assert.equal(by.get('RETHUNK')?.on, true);
  assert.equal(by.get('RETHUNK')?.alias, 'MITIGATION_RETHUNK');
  assert.equal(by.get('CPU_SRSO')?.on, true);
  assert.equal(by.get('RETPOLINE')?.on, true);
  assert.equal(by.get('X86_KERNEL_IBT')?.on, false);
  assert.equal(by.get('CALL_PADDING')?.value, 'n');
  assert.equal(by.get('MITIGATION_CALL_DEPTH_TRACKING')?.on, false);
  assert.ok(!v.reasons.some((r) => r.includes('X86_KERNEL_IBT')));
});

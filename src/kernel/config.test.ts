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

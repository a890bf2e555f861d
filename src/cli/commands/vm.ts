/*
 * `suture vm run|shell`: boot the exact target kernel in a throwaway QEMU VM (src/vm/).
 *
 *   suture vm run --kernel R --script FILE [--add FILE]… [--module M]… [--with-suture] [--net]
 *       runs the script in the VM, prints its output, exits with its status; a kernel oops, panic or
 *       WARNING makes the run fail (status 1) whatever the script said, a timeout exits 124
 *   suture vm shell --kernel R [same options]
 *       an interactive shell on the VM's console (Ctrl-A x quits QEMU)
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../../diagnostic.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { defaultRelease, type KernelTarget } from '../../kernel/target.js';
import { runInVm, shellVm, type VmOptions, type VmResult } from '../../vm/index.js';

interface CommonOpts {
  kernel?: string;
  add: string[];
  module: string[];
  withSuture?: boolean;
  net?: boolean;
  memory?: string;
  append?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function common(cmd: Command): Command {
  return cmd
    .option('--kernel <release>', 'target kernel release (default $SUTURE_KERNEL or 6.1.0-53-cloud-amd64)')
    .option('--add <file>', 'copy a file or directory into the VM at /<basename> (repeatable)', collect, [])
    .option(
      '--module <name>',
      "load one of the image's modules at boot, with its dependencies (repeatable)",
      collect,
      [],
    )
    .option('--with-suture', 'put Node and this checkout in the VM so `suture` works there')
    .option('--net', 'user networking: the guest is 10.0.2.15, the host is reachable at 10.0.2.2')
    .option('--memory <MB>', 'guest memory in MB (default 512, 1024 with --with-suture)')
    .option('--append <args>', 'extra kernel command line');
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    fail('CLI-BAD-NUMBER', `${flag} ${JSON.stringify(v)} is not a positive integer`);
  return n;
}

async function vmOptions(o: CommonOpts): Promise<VmOptions> {
  const kernel: KernelTarget = await ensureKernel(o.kernel ?? defaultRelease());
  const memoryMb = positiveInt('--memory', o.memory);
  return {
    kernel,
    files: o.add.map((from) => ({ from })),
    modules: o.module,
    withSuture: o.withSuture === true,
    net: o.net === true,
    ...(memoryMb ? { memoryMb } : {}),
    ...(o.append ? { append: o.append } : {}),
  };
}

function exitStatus(r: VmResult): number {
  switch (r.outcome) {
    case 'ok':
    case 'script-failed':
      return r.exitCode ?? 1;
    case 'timeout':
      return 124;
    default:
      return r.exitCode && r.exitCode !== 0 ? r.exitCode : 1;
  }
}

function report(r: VmResult): void {
  const lines = [
    `suture vm: ${r.outcome}: ${r.message} (boot ${(r.bootMs / 1000).toFixed(1)} s, run ${(r.runMs / 1000).toFixed(1)} s)`,
  ];
  for (const p of r.problems) lines.push('', `kernel ${p.kind}:`, p.trace);
  process.stderr.write(`${lines.join('\n')}\n`);
}

export function register(program: Command): void {
  const vm = program.command('vm').description('boot the exact target kernel in a throwaway QEMU VM');

  common(
    vm
      .command('run')
      .description('run a shell script in a VM; prints its output, exits with its status')
      .requiredOption('--script <file>', 'shell script to run (busybox sh)')
      .option('--timeout <seconds>', 'hard limit for boot + script (default 300)')
      .option('--console', 'stream the kernel console to stderr')
      .option('--json', 'print the whole result (output, kernel log, problems, timings) as JSON'),
  ).action(
    async (o: CommonOpts & { script: string; timeout?: string; console?: boolean; json?: boolean }) => {
      let script: string;
      try {
        script = readFileSync(o.script, 'utf8');
      } catch {
        fail('VM-SCRIPT-MISSING', `cannot read the script ${o.script}`, { location: { file: o.script } });
      }
      const timeout = positiveInt('--timeout', o.timeout);
      const r = await runInVm({
        ...(await vmOptions(o)),
        script,
        ...(timeout ? { timeoutMs: timeout * 1000 } : {}),
        ...(o.console ? { onConsole: (c: string) => process.stderr.write(c) } : {}),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else {
        process.stdout.write(r.output);
        if (r.outcome !== 'ok') report(r);
      }
      process.exitCode = exitStatus(r);
    },
  );

  common(
    vm
      .command('shell')
      .description('an interactive shell in a VM on this terminal (exit or Ctrl-A x to power off)'),
  ).action(async (o: CommonOpts) => {
    process.exitCode = await shellVm(await vmOptions(o));
  });
}

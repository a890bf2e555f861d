/*
 * `suture selftest build [--kernel R] [-o DIR]`: the kernel's own livepatch selftests for a target
 * (src/klp/selftests.ts): every test module built with the kernel's kbuild and compiler, bundled with
 * the scripts, ready to copy to a machine (or a VM) running that kernel. A module that does not build
 * is listed with the compiler's words and makes the command exit 1.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ensureKernel } from '../../kernel/fetch.js';
import { defaultRelease } from '../../kernel/target.js';
import { buildSelftests, guestInstall, guestScript } from '../../klp/selftests.js';
import { fetchProgress } from './kernel.js';

export function register(program: Command): void {
  const st = program.command('selftest').description("the kernel's own livepatch selftests");
  st.command('build')
    .description('build the test modules for a target kernel and bundle them with the scripts')
    .option('--kernel <release>', 'target kernel release (default $SUTURE_KERNEL or 6.1.0-53-cloud-amd64)')
    .option('-o, --out <dir>', 'output directory', 'klp-selftests')
    .option('--json', 'machine-readable output')
    .action(async (o: { kernel?: string; out: string; json?: boolean }) => {
      const target = await ensureKernel(o.kernel ?? defaultRelease(), { onProgress: fetchProgress() });
      const b = await buildSelftests(target, resolve(o.out));
      const failed = b.modules.filter((m) => !m.ko);
      if (failed.length) process.exitCode = 1;
      if (o.json) {
        const { log: _log, ...rest } = b;
        console.log(JSON.stringify({ release: target.release, ...rest }, null, 2));
        return;
      }
      for (const m of b.modules) {
        console.log(`${m.ko ? 'built ' : 'FAILED'} ${m.name}`);
        for (const l of m.errors) console.log(`    ${l}`);
      }
      if (b.sources.missing.length) console.log(`scripts this tree lacks: ${b.sources.missing.join(', ')}`);
      console.log(`\nbundle: ${b.dir} (scripts ${b.sources.scripts.join(', ')})`);
      console.log(`on the ${target.release} machine, as root, with the bundle copied to /opt/klp-selftests:`);
      for (const l of guestInstall('/opt/klp-selftests').split('\n').slice(1)) console.log(`  ${l}`);
      console.log(`  ${guestScript('/opt/klp-selftests', b.sources.scripts[0] ?? 'test-livepatch')}`);
    });
}

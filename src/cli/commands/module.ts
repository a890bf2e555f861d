/*
 * `suture module build <dir> --kernel <release>`: build a hand-written module with kbuild against the
 * target's prepared source tree (src/klp/kbuild.ts). Compiler output is shown as it comes.
 */
import type { Command } from 'commander';
import { isSutureError, SutureError } from '../../diagnostic.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { defaultRelease } from '../../kernel/target.js';
import { buildModule, moduleVermagic } from '../../klp/kbuild.js';
import { fetchProgress } from './kernel.js';

export function register(program: Command): void {
  const mod = program.command('module').description('hand-written kernel modules');
  mod
    .command('build <dir>')
    .description('build the module in <dir> with kbuild for a target kernel')
    .option('--kernel <release>', 'target kernel release (default $SUTURE_KERNEL or 6.1.0-53-cloud-amd64)')
    .option('--json', 'machine-readable output (build output goes to stderr)')
    .action(async (dir: string, o: { kernel?: string; json?: boolean }) => {
      const target = await ensureKernel(o.kernel ?? defaultRelease(), { onProgress: fetchProgress() });
      const t0 = performance.now();
      const r = await buildModule(dir, target, {
        onOutput: (l) => (o.json ? process.stderr : process.stdout).write(`${l}\n`),
      }).catch((e: unknown) => {
        // the compiler's output was already shown as it came: do not print it twice
        if (isSutureError(e) && e.code === 'MODULE-BUILD-FAILED') {
          const { detail: _shown, ...d } = e.diagnostic;
          throw new SutureError(d);
        }
        throw e;
      });
      const ms = Math.round(performance.now() - t0);
      const vermagic = moduleVermagic(r.ko);
      if (o.json) {
        console.log(
          JSON.stringify({ ko: r.ko, release: target.release, buildId: target.buildId, vermagic, ms }),
        );
        return;
      }
      console.log(`built ${r.ko} in ${(ms / 1000).toFixed(1)} s\n  vermagic: ${vermagic}`);
    });
}

/*
 * `suture new <dir> --function <symbol> [--name N] [--object MOD]`: write a hand-written livepatch
 * module skeleton (src/klp/skeleton.ts) — the C file, its Kbuild and a Makefile.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { writeSkeleton } from '../../klp/skeleton.js';

export function register(program: Command): void {
  program
    .command('new <dir>')
    .description('write a livepatch module skeleton replacing one kernel function')
    .requiredOption('--function <symbol>', 'the kernel function to replace')
    .option('--name <name>', 'module name (default livepatch_<symbol>)')
    .option('--object <module>', 'the module that defines the function (default: vmlinux)')
    .option('--json', 'machine-readable output')
    .action((dir: string, o: { function: string; name?: string; object?: string; json?: boolean }) => {
      const s = writeSkeleton(dir, {
        symbol: o.function,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.object !== undefined ? { object: o.object } : {}),
      });
      const files = Object.keys(s.files).map((f) => resolve(dir, f));
      if (o.json) {
        console.log(JSON.stringify({ name: s.name, dir: resolve(dir), files }, null, 2));
        return;
      }
      console.log(`wrote livepatch module ${s.name}:`);
      for (const f of files) console.log(`  ${f}`);
      console.log(`build it with: suture module build ${dir} --kernel <release>`);
    });
}

/*
 * objdiff and the module stage on the blog's meminfo patch (kbuild-exact objects of the target kernel):
 *  - objdiff-meminfo: diffObjects (read both objects, correlate, compare, rules, selection) vs one
 *    `readelf -aW` of the same two objects to /dev/null — what it costs just to look at them.
 *  - diff-object-meminfo: writing the diff object from the result, next to the objdiff time.
 *  - module-meminfo: buildLivepatchModule (names + sympos, registration C, kbuild link, klp rewrite)
 *    vs the kbuild link alone of the same module directory (`make M=dir modules`, nothing rebuilt but
 *    the link): the overhead of our klp steps on top of kbuild.
 */
import { spawnSync } from 'node:child_process';
import { openSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { buildLivepatchModule } from '../klp/livepatch-module.js';
import { buildMeminfoLivepatch } from '../klp/testing/livepatch-module.fixture.js';
import { diffObjects } from '../objdiff/objdiff.js';
import { diffObjectOf } from '../objdiff/write.js';
import { type Benchmark, median, timeRuns } from './harness.js';

export const benchmarks: Benchmark[] = [
  {
    name: 'objdiff-meminfo',
    async run(ctx) {
      const target = await ensureKernel(defaultRelease());
      const fixture = await buildMeminfoLivepatch(target);
      try {
        const { originalPath, patchedPath } = fixture.diff;
        const ours = await timeRuns(ctx.runs, () => diffObjects(originalPath, patchedPath), 1);
        const readelf = await timeRuns(ctx.runs, () => {
          spawnSync('readelf', ['-aW', originalPath, patchedPath], {
            stdio: ['ignore', openSync('/dev/null', 'w'), 'ignore'],
          });
        });
        ctx.report({
          name: 'objdiff meminfo.o pair',
          ours: median(ours),
          baseline: { name: 'readelf -aW of both objects', value: median(readelf) },
          note: `${ctx.runs} runs`,
        });
        const d = await diffObjects(originalPath, patchedPath);
        const write = await timeRuns(ctx.runs, () => diffObjectOf(d));
        ctx.report({
          name: 'build diff object (model)',
          ours: median(write),
          note: 'from a finished comparison',
        });

        const unit = fixture.units[0]!;
        const mod = await timeRuns(Math.min(ctx.runs, 3), () =>
          buildLivepatchModule({
            name: 'meminfo',
            replace: false,
            target,
            units: [unit],
            outDir: join(fixture.dir, 'bench-out'),
            workDir: join(fixture.dir, 'bench'),
          }),
        );
        const moduleDir = join(fixture.dir, 'bench', 'module');
        const kbuild = await timeRuns(Math.min(ctx.runs, 3), () => {
          unlinkSync(join(moduleDir, 'livepatch-meminfo.ko'));
          spawnSync(
            'make',
            ['-C', target.sourceTree, `M=${moduleDir}`, 'KBUILD_MODPOST_WARN=1', '-j2', 'modules'],
            { stdio: 'ignore' },
          );
        });
        ctx.report({
          name: 'module stage (meminfo)',
          ours: median(mod),
          baseline: { name: 'kbuild relink of the same module', value: median(kbuild) },
          note: 'ours includes the registration compile, modpost and the klp rewrite',
        });
      } finally {
        rmSync(fixture.dir, { recursive: true, force: true });
      }
    },
  },
];

/*
 * `suture objdiff <orig.o> <patched.o> [-o diff.o] [--json] [--kernel R] [--table-entry SECTION=BYTES]...`:
 * the core of `suture build`, on its own. The special tables are split with the entry sizes of kernel R
 * (read from its debug vmlinux), or those set by hand, or else x86-64 6.1's.
 *
 * Classifies every function of the patched object as same, changed or new (with the reason a changed
 * one differs), runs the livepatch-safety rules, and writes the object holding only what a livepatch
 * needs. Exit status: 0 when the pair can be carried, 1 when anything was refused.
 */
import type { Command } from 'commander';
import type { TargetCode } from '../../check/facts.js';
import { renderDiagnostic } from '../../diagnostic.js';
import { cacheRoot } from '../../kernel/cache.js';
import { ensureKernel } from '../../kernel/fetch.js';
import { objectDiffJson } from '../../objdiff/json.js';
import { targetTableSizes } from '../../objdiff/kernel-tables.js';
import { diffObjects } from '../../objdiff/objdiff.js';
import { DEFAULT_TABLE_SIZES, type TableSizes, withTableEntries } from '../../objdiff/special-tables.js';
import { targetCode } from '../../objdiff/target-code.js';
import { writeDiffObject } from '../../objdiff/write.js';

interface ObjdiffOptions {
  output?: string;
  json?: boolean;
  kernel?: string;
  tableEntry: string[];
}

/**
 * What the objects are diffed against: the target kernel's table entry sizes (cached per build id) with
 * hand settings on top, and its code requirements (IBT, return thunks) when `--kernel` names it.
 */
export async function diffTarget(
  kernel: string | undefined,
  settings: readonly string[],
): Promise<{ tables: TableSizes; target?: TargetCode }> {
  if (!kernel) return { tables: withTableEntries(DEFAULT_TABLE_SIZES, settings) };
  const t = await ensureKernel(kernel);
  return {
    tables: withTableEntries(targetTableSizes(t, cacheRoot()), settings),
    target: targetCode(t.config),
  };
}

export function register(program: Command): void {
  program
    .command('objdiff')
    .description(
      'compare an original and a patched object: classify functions, refuse what a livepatch cannot carry, write the diff object',
    )
    .argument(
      '<orig.o>',
      'object compiled from the original source (with -ffunction-sections -fdata-sections)',
    )
    .argument('<patched.o>', 'object compiled from the patched source, same flags')
    .option(
      '-o, --output <diff.o>',
      'write the diff object (only the changed and new functions and what they need)',
    )
    .option('--json', 'print the result as JSON')
    .option(
      '--kernel <release>',
      'split special tables with the entry sizes of this kernel (from its vmlinux)',
    )
    .option(
      '--table-entry <SECTION=BYTES>',
      'entry size of one special table, for objects of another kernel (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .action(async (orig: string, patched: string, opts: ObjdiffOptions) => {
      const diff = await diffObjects(orig, patched, await diffTarget(opts.kernel, opts.tableEntry));
      let written: string | undefined;
      if (opts.output && diff.refusals.length === 0) {
        await writeDiffObject(diff, opts.output);
        written = opts.output;
      }
      if (opts.json) {
        const out = { original: orig, patched, ...objectDiffJson(diff), output: written ?? null };
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else {
        const unit = patched.replace(/^.*\//, '');
        for (const f of diff.functions) {
          if (f.change === 'same') continue;
          process.stdout.write(
            `${unit}: ${f.change} function: ${f.name}${f.reason ? ` (${f.reason})` : ''}\n`,
          );
        }
        const same = diff.functions.filter((f) => f.change === 'same' && !f.parent).length;
        process.stdout.write(`${unit}: ${same} function(s) unchanged\n`);
        for (const d of diff.data)
          if (d.change !== 'same')
            process.stdout.write(`${unit}: ${d.change} data: ${d.name}${d.reason ? ` (${d.reason})` : ''}\n`);
        for (const w of diff.warnings) process.stderr.write(`${renderDiagnostic(w)}\n`);
        for (const r of diff.refusals) process.stderr.write(`${renderDiagnostic(r)}\n`);
        if (written) process.stdout.write(`wrote ${written}\n`);
      }
      if (diff.refusals.length) process.exitCode = 1;
    });
}

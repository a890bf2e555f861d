/*
 * Test support: objects compiled with a target kernel's own kbuild recipe, then objtool run as kbuild
 * runs it on vmlinux.o for that kernel (6.12 IBT kernels delay objtool to the link: `--link`, with
 * `--prefix=16` making the `__pfx_` symbols, `--ibt`, `--rethunk`, `--hacks=skylake` for the call-depth
 * sites, `--orc`...). The unit's recipe (fs/proc/meminfo.o) gives the compiler flags; the source is ours.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileObject, kbuildRecipe } from '../../source/compile.js';

/** objtool's options for vmlinux.o as scripts/Makefile.lib derives them from the config. */
export function vmlinuxObjtoolArgs(config: string): string[] {
  const on = (o: string) => new RegExp(`^CONFIG_${o}=y$`, 'm').test(config);
  const padding = /^CONFIG_FUNCTION_PADDING_BYTES=(\d+)$/m.exec(config)?.[1];
  const args: string[] = [];
  const when: [string, string][] = [
    ['HAVE_JUMP_LABEL_HACK', '--hacks=jump_label'],
    ['HAVE_NOINSTR_HACK', '--hacks=noinstr'],
    ['MITIGATION_CALL_DEPTH_TRACKING', '--hacks=skylake'],
    ['X86_KERNEL_IBT', '--ibt'],
    ['UNWINDER_ORC', '--orc'],
    ['MITIGATION_RETPOLINE', '--retpoline'],
    ['MITIGATION_RETHUNK', '--rethunk'],
    ['MITIGATION_SLS', '--sls'],
    ['STACK_VALIDATION', '--stackval'],
    ['HAVE_STATIC_CALL_INLINE', '--static-call'],
    ['HAVE_UACCESS_VALIDATION', '--uaccess'],
  ];
  for (const [o, a] of when) if (on(o)) args.push(a);
  if (on('PREFIX_SYMBOLS')) args.push(`--prefix=${padding ?? '16'}`);
  if (on('X86_KERNEL_IBT') || on('LTO_CLANG')) args.push('--link');
  return args;
}

export interface KernelCompiler {
  tree: string;
  config: string;
  dir: string;
  n: number;
}

export function kernelCompiler(tree: string, configPath: string): KernelCompiler {
  return {
    tree,
    config: readFileSync(configPath, 'utf8'),
    dir: mkdtempSync(join(tmpdir(), 'suture-kobj-')),
    n: 0,
  };
}

/** Compile `source` as the tree compiles fs/proc/meminfo.c, then objtool as for vmlinux.o (unless `objtool: false`). */
export async function compileKernelC(
  k: KernelCompiler,
  source: string,
  opts: { objtool?: boolean; extraFlags?: string[] } = {},
): Promise<string> {
  const base = join(k.dir, `u${k.n++}`);
  writeFileSync(`${base}.c`, source);
  const r = kbuildRecipe(k.tree, 'fs/proc/meminfo.o');
  const cc = opts.extraFlags ? [...r.cc.slice(0, -1), ...opts.extraFlags, r.cc.at(-1)!] : r.cc;
  const recipe = { ...r, cc, objtool: undefined };
  await compileObject({ tree: k.tree, recipe, outObject: `${base}.o`, source: `${base}.c` });
  if (opts.objtool !== false) {
    const ot = spawnSync(
      join(k.tree, 'tools/objtool/objtool'),
      [...vmlinuxObjtoolArgs(k.config), `${base}.o`],
      {
        encoding: 'utf8',
      },
    );
    if (ot.status !== 0) throw new Error(`objtool failed: ${ot.stderr}`);
  }
  return `${base}.o`;
}

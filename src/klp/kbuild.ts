/*
 * Building an external module with kbuild against a target kernel's prepared source tree.
 *
 * `make -C <sourceTree> M=<dir> modules` is exactly how the kernel builds an out-of-tree module: the
 * tree supplies the configuration, the compiler flags, modpost with the image's Module.symvers (so
 * symbol CRCs match the running kernel) and the vermagic. The module is built in place in `dir`; the
 * tree is only read. Compiler diagnostics are passed through unchanged, as a kernel engineer expects.
 * After the build, the module's vermagic is checked against the target: a module the kernel would
 * refuse is an error here, not a surprise at load time.
 *
 * Every make runs with the kernel's own compiler (`kernelToolchain(release)`, kernel/toolchain.ts): on the
 * host for Debian 12 kernels, inside the suite's build root for trixie ones; a host compiler that is not
 * the kernel's build is refused (KERNEL-COMPILER-MISMATCH) before make runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../diagnostic.js';
import { kernelToolchain } from '../kernel/kernel-toolchain.js';
import type { KernelTarget } from '../kernel/target.js';
import type { Toolchain } from '../kernel/toolchain.js';

export interface BuildModuleOptions {
  /** each line of make/compiler output, as it comes */
  onOutput?: (line: string) => void;
  /** extra environment for make (e.g. KCFLAGS) */
  env?: Record<string, string>;
  /** the kernel's toolchain (default: kernelToolchain(target.release)) */
  toolchain?: Toolchain;
}

export interface MakeOptions {
  cwd?: string;
  /** extra environment for make */
  env?: Record<string, string>;
  /** each line of make/compiler output, as it comes */
  onOutput?: (line: string) => void;
  /** run make through this toolchain (its makeArgs added, inside its build root); default: the host's make */
  toolchain?: Toolchain;
}

/**
 * The one kbuild runner: `make -C <tree> M=<dir> <args>`, every output line collected (and passed on as it
 * comes). Resolves with make's exit status; rejects only when make cannot be started.
 */
export function runMake(
  tree: string,
  dir: string,
  args: string[],
  opts: MakeOptions = {},
): Promise<{ code: number; lines: string[]; argv: string[] }> {
  const tc = opts.toolchain;
  const argv = ['-C', tree, ...(tc?.makeArgs ?? []), `M=${dir}`, ...args];
  const cwd = opts.cwd ?? dir;
  const cmd = tc ? tc.command(['make', ...argv], { cwd, reach: [dir] }) : { file: 'make', args: argv };
  const lines: string[] = [];
  return new Promise((res, rej) => {
    const p = spawn(cmd.file, cmd.args, {
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    const onData = (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const l of parts) {
        lines.push(l);
        opts.onOutput?.(l);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', rej);
    p.on('close', (c) => {
      if (pending) {
        lines.push(pending);
        opts.onOutput?.(pending);
      }
      res({ code: c ?? 1, lines, argv });
    });
  });
}

/**
 * Link a livepatch module in `dir` (modpost warns instead of failing on the klp symbols it cannot
 * resolve); throws KBUILD-FAILED with the tail of make's output. Returns the whole output.
 */
export async function runKbuild(
  tree: string,
  dir: string,
  verbose = false,
  toolchain?: Toolchain,
): Promise<string> {
  const r = await runMake(tree, dir, ['KBUILD_MODPOST_WARN=1', '-j2', 'modules'], {
    ...(verbose ? { onOutput: (l: string) => process.stderr.write(`${l}\n`) } : {}),
    ...(toolchain ? { toolchain } : {}),
  }).catch((e: Error) =>
    fail('KBUILD-FAILED', `linking the livepatch module failed: ${e.message}`, { location: { file: dir } }),
  );
  if (r.code !== 0)
    fail(
      'KBUILD-FAILED',
      `linking the livepatch module failed: make ${r.argv.join(' ')} exited with ${r.code}`,
      {
        location: { file: dir },
        detail: r.lines.slice(-30),
        hint: 'the output of make is in the build directory; run with --keep to inspect it',
      },
    );
  return `${r.lines.join('\n')}\n`;
}

export interface BuiltModule {
  ko: string;
  log: string;
}

/** The module names a Kbuild/Makefile declares with `obj-m += name.o` / `obj-m := name.o`. */
export function declaredModules(kbuildText: string): string[] {
  const out: string[] = [];
  for (const m of kbuildText.matchAll(/^\s*obj-m\s*[:+]?=\s*(.+)$/gm)) {
    for (const o of (m[1] ?? '').trim().split(/\s+/)) if (o.endsWith('.o')) out.push(o.slice(0, -2));
  }
  return out;
}

/** `modinfo -F vermagic` of a .ko. */
export function moduleVermagic(ko: string): string {
  const r = spawnSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' });
  if (r.status !== 0) {
    fail('MODULE-UNREADABLE', `modinfo cannot read ${ko}`, {
      detail: (r.stderr || String(r.error)).trim().split('\n'),
      hint: 'install kmod',
    });
  }
  return r.stdout.trim();
}

/** Build the module in `dir` for `target`; throws MODULE-BUILD-FAILED with the compiler output. */
export async function buildModule(
  dir: string,
  target: KernelTarget,
  opts: BuildModuleOptions = {},
): Promise<BuiltModule> {
  const mdir = resolve(dir);
  const kb = [join(mdir, 'Kbuild'), join(mdir, 'Makefile')].find((f) => existsSync(f));
  if (!kb) {
    fail('MODULE-NO-KBUILD', `${mdir} has no Kbuild or Makefile`, {
      why: 'kbuild learns which objects make the module from `obj-m := <name>.o`',
      hint: 'create the module with `suture new <dir> --function <symbol>`',
    });
  }
  const names = declaredModules(readFileSync(kb, 'utf8'));
  if (names.length !== 1) {
    fail('MODULE-NO-KBUILD', `${kb} must declare exactly one module with obj-m (found ${names.length})`, {
      location: { file: kb },
      hint: 'write `obj-m := <name>.o`',
    });
  }
  const name = names[0] as string;
  const toolchain = opts.toolchain ?? (await kernelToolchain(target.release));
  const { code, lines } = await runMake(target.sourceTree, mdir, ['-j2', 'modules'], {
    cwd: mdir,
    env: opts.env,
    onOutput: opts.onOutput,
    toolchain,
  }).catch((e: Error) =>
    fail('MODULE-BUILD-FAILED', `cannot run make: ${e.message}`, { hint: 'install make and gcc' }),
  );
  const log = lines.join('\n');
  if (code !== 0) {
    fail('MODULE-BUILD-FAILED', `kbuild failed to build module ${name} for ${target.release}`, {
      location: { file: mdir },
      detail: lines.filter((l) => !/^make(\[\d+\])?: (Entering|Leaving) directory/.test(l)).slice(-60),
      hint: 'fix the errors reported by the compiler above, then build again',
    });
  }
  const ko = join(mdir, `${name}.ko`);
  if (!existsSync(ko)) {
    fail('MODULE-BUILD-FAILED', `kbuild succeeded but ${name}.ko is missing`, {
      detail: readdirSync(mdir),
    });
  }
  const vermagic = moduleVermagic(ko);
  if (vermagic.split(' ')[0] !== target.release) {
    fail(
      'MODULE-VERMAGIC-MISMATCH',
      `${name}.ko has vermagic "${vermagic}", the target is ${target.release}`,
      {
        why: 'the kernel refuses a module whose vermagic differs from its own release',
        hint: `the source tree ${target.sourceTree} is not prepared for ${target.release}: fetch the kernel again`,
      },
    );
  }
  return { ko, log };
}

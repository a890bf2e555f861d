/*
 * The prepared source tree: the kernel's source, configured exactly like the shipped image, ready for
 * kbuild to compile external modules (`make -C <tree> M=<dir> modules`) and single in-tree objects
 * (`make -C <tree> fs/proc/meminfo.o`) that match the shipped binaries.
 *
 * Preparation: untar linux-source of the image's Debian version, check its Makefile version, install the
 * image's config and the headers package's Module.symvers, pin KERNELRELEASE to the Debian ABI name,
 * `make olddefconfig modules_prepare` plus the tools in-tree objects need, then check that the generated UTS_RELEASE (the start of every
 * module's vermagic) is the release and that olddefconfig kept every livepatch-relevant option.
 *
 * Why pin KERNELRELEASE in the Makefile: upstream derives it from VERSION.PATCHLEVEL.SUBLEVEL (6.1.187),
 * Debian overrides it with the ABI name (6.1.0-53-cloud-amd64) on its make command line. A module whose
 * vermagic says 6.1.187 is refused by the kernel, and a single `make` run without the override would
 * silently regenerate utsrelease.h, so the override lives in the tree itself, as Debian's headers do.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';
import { parseKernelConfig } from './config.js';
import { type BytesProgress, extractInnerTarball } from './deb.js';
import type { Toolchain } from './toolchain.js';

/** Bumped whenever the preparation recipe changes, so old trees are not reused. */
export const TREE_RECIPE = 2;

export interface PrepareInput {
  tree: string;
  release: string;
  upstreamVersion: string;
  sourceDeb: string;
  /** size of the source .deb, for extraction progress */
  sourceDebSize: number;
  /** package name, e.g. linux-source-6.1 (the tarball inside is /usr/src/<name>.tar.xz) */
  sourcePackage: string;
  config: string;
  moduleSymvers: string;
  /** the kernel's own compiler (toolchain.ts); every make runs through it. Default: the host's make */
  toolchain?: Pick<Toolchain, 'command' | 'makeArgs' | 'compiler'>;
}

export interface PrepareHooks {
  onStep?: (step: string, state: 'start' | 'done', ms?: number) => void;
  onBytes?: BytesProgress;
  onOutput?: (line: string) => void;
}

/** `VERSION.PATCHLEVEL.SUBLEVEL` from a kernel Makefile. */
export function makefileVersion(makefile: string): string {
  const get = (k: string) => new RegExp(`^${k} = (\\d*)$`, 'm').exec(makefile)?.[1];
  const [v, p, s] = [get('VERSION'), get('PATCHLEVEL'), get('SUBLEVEL')];
  if (!v || p === undefined || s === undefined)
    fail('KERNEL-TREE-UNEXPECTED', 'no VERSION/PATCHLEVEL/SUBLEVEL in Makefile');
  return `${v}.${p}.${s || '0'}`;
}

const RELEASE_LINE = 'KERNELRELEASE = $(shell cat include/config/kernel.release 2> /dev/null)';
const FILECHK_LINE =
  'echo "$(KERNELVERSION)$$($(CONFIG_SHELL) $(srctree)/scripts/setlocalversion $(srctree))"';
/** 6.12's form: read-file, and filechk_kernel.release echoes KERNELRELEASE unless it comes from the file */
const RELEASE_LINE_612 = 'KERNELRELEASE = $(call read-file, include/config/kernel.release)';
const FILECHK_612 =
  'ifeq ($(origin KERNELRELEASE),file)\nfilechk_kernel.release = $(srctree)/scripts/setlocalversion $(srctree)\nelse\nfilechk_kernel.release = echo $(KERNELRELEASE)\nendif';

/** Return the top Makefile with KERNELRELEASE pinned to `release` (throws if the Makefile is unexpected). */
export function pinKernelRelease(makefile: string, release: string): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(release)) fail('KERNEL-BAD-RELEASE', `bad release ${release}`);
  const pinned = `# suture: Debian builds this tree with KERNELRELEASE=${release}; pinned so every build agrees\noverride KERNELRELEASE = ${release}`;
  if (makefile.includes(RELEASE_LINE) && makefile.includes(FILECHK_LINE)) {
    return makefile.replace(RELEASE_LINE, pinned).replace(FILECHK_LINE, 'echo "$(KERNELRELEASE)"');
  }
  // 6.12: an `override` KERNELRELEASE is not of origin `file`, so kernel.release is written from it
  if (makefile.includes(RELEASE_LINE_612) && makefile.includes(FILECHK_612)) {
    return makefile.replace(RELEASE_LINE_612, pinned);
  }
  return fail(
    'KERNEL-TREE-UNEXPECTED',
    'the kernel Makefile does not compute KERNELRELEASE the way Suture expects',
    {
      why: 'Suture pins KERNELRELEASE to the Debian ABI name so modules get the image vermagic',
      hint: 'this source version is not supported yet; report it with the release you used',
    },
  );
}

/**
 * Return the top Makefile with a guard appended: every make of the tree (not the first pass that only
 * re-invokes make with -rR) fails unless `$(CC)` is the compiler build the kernel was built with. kbuild
 * would otherwise notice the other compiler, re-run syncconfig and silently rewrite the prepared tree.
 */
export function guardCompiler(makefile: string, build: string): string {
  if (!build || /[\n#$\\]/.test(build))
    fail('KERNEL-TREE-UNEXPECTED', `unusable compiler build text: ${build}`);
  return `${makefile.replace(/\n*$/, '\n')}
# suture: this tree is compiled only by the kernel's own compiler build (kernel/toolchain.ts)
ifneq ($(need-sub-make),1)
suture-cc-want := ${build}
suture-cc-have := $(shell $(CC) --version 2>/dev/null | sed -n '1s/^[^ ]* //p')
ifneq ($(suture-cc-have),$(suture-cc-want))
$(error suture: this kernel is compiled by \`$(suture-cc-want)\`, but $(CC) is \`$(suture-cc-have)\`; run make through the kernel's toolchain (kernelToolchain(release).command))
endif
endif
`;
}

/** Run make in `tree`, streaming output to `log` and `onOutput`; throws KERNEL-PREPARE-FAILED. */
function make(
  tree: string,
  targets: string[],
  logPath: string,
  onOutput?: (l: string) => void,
  tc?: PrepareInput['toolchain'],
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const log = createWriteStream(logPath, { flags: 'a' });
    const tail: string[] = [];
    const argv = ['make', '-C', tree, '-j2', ...(tc?.makeArgs ?? []), ...targets];
    const cmd = tc ? tc.command(argv, { cwd: tree }) : { file: 'make', args: argv.slice(1) };
    const p = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer) => {
      log.write(d);
      for (const line of d.toString().split('\n')) {
        if (!line) continue;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        onOutput?.(line);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', (e) => reject(e));
    p.on('close', (code) => {
      log.end();
      if (code === 0) resolve();
      else reject(new Error(`make ${targets.join(' ')} failed (exit ${code})\n${tail.join('\n')}`));
    });
  }).catch((e: Error) =>
    fail('KERNEL-PREPARE-FAILED', `preparing the kernel source tree failed: make ${targets.join(' ')}`, {
      detail: e.message.split('\n').slice(1),
      hint: `is the build tool chain installed (gcc make bc bison flex libelf-dev libssl-dev)? full log: ${logPath}`,
    }),
  );
}

/** An object every x86 kernel builds (lib/ctype.c is obj-y unconditionally). */
const PROBE_OBJECT = 'lib/ctype.o';

const KEPT_OPTIONS = [
  'LIVEPATCH',
  'DYNAMIC_FTRACE_WITH_REGS',
  'DYNAMIC_FTRACE_WITH_ARGS',
  'HAVE_RELIABLE_STACKTRACE',
  'UNWINDER_ORC',
  'MODVERSIONS',
  'MODULE_SIG_FORCE',
  'RETPOLINE',
  'CC_HAS_IBT',
  'X86_KERNEL_IBT',
  'FUNCTION_TRACER',
  'CALL_PADDING',
  'PREFIX_SYMBOLS',
  'MITIGATION_RETHUNK',
  'MITIGATION_CALL_DEPTH_TRACKING',
  'MITIGATION_SRSO',
  'MITIGATION_ITS',
];

/** Prepare `input.tree` (an empty directory at its final path). Timings are reported via onStep. */
export async function prepareSourceTree(input: PrepareInput, hooks: PrepareHooks = {}): Promise<void> {
  const { tree } = input;
  const timings: Record<string, number> = {};
  const step = async (name: string, fn: () => Promise<void> | void) => {
    const t0 = performance.now();
    hooks.onStep?.(name, 'start');
    await fn();
    const ms = performance.now() - t0;
    timings[name] = Math.round(ms);
    hooks.onStep?.(name, 'done', ms);
  };
  const log = join(tree, '.suture-prepare.log');
  await step('untar source', () =>
    extractInnerTarball(
      input.sourceDeb,
      `./usr/src/${input.sourcePackage}.tar.xz`,
      tree,
      input.sourceDebSize,
      hooks.onBytes,
    ),
  );
  await step('configure', () => {
    const mk = readFileSync(join(tree, 'Makefile'), 'utf8');
    const v = makefileVersion(mk);
    if (v !== input.upstreamVersion) {
      fail('KERNEL-SOURCE-MISMATCH', `the source tree is Linux ${v}, the image is ${input.upstreamVersion}`, {
        why: 'a livepatch must be compiled from exactly the source the running kernel was built from',
        hint: 'the cached source package is not the image version: delete the cache entry and fetch again',
      });
    }
    const pinned = pinKernelRelease(mk, input.release);
    const build = input.toolchain?.compiler.build;
    writeFileSync(join(tree, 'Makefile'), build ? guardCompiler(pinned, build) : pinned);
    copyFileSync(input.config, join(tree, '.config'));
    copyFileSync(input.moduleSymvers, join(tree, 'Module.symvers'));
  });
  await step('make olddefconfig', () => make(tree, ['olddefconfig'], log, hooks.onOutput, input.toolchain));
  await step('make modules_prepare', () =>
    make(tree, ['modules_prepare'], log, hooks.onOutput, input.toolchain),
  );
  // An in-tree object needs more than modules_prepare builds (x86's relocs tool, genksyms for
  // modversions, compile.h). Build one small always-built object so those exist, then remove it:
  // the build stage asks kbuild for the recipe of objects it compiles, and an up-to-date object has none.
  await step('make in-tree prerequisites', async () => {
    await make(tree, [PROBE_OBJECT], log, hooks.onOutput, input.toolchain);
    for (const f of [PROBE_OBJECT, PROBE_OBJECT.replace(/([^/]+)$/, '.$1.cmd')])
      rmSync(join(tree, f), { force: true });
  });
  await step('check tree', () => {
    const uts = readFileSync(join(tree, 'include/generated/utsrelease.h'), 'utf8');
    if (!uts.includes(`#define UTS_RELEASE "${input.release}"`)) {
      fail('KERNEL-PREPARE-FAILED', `prepared tree has the wrong UTS_RELEASE: ${uts.trim()}`, {
        why: 'modules built from it would carry a vermagic the kernel refuses',
      });
    }
    const want = parseKernelConfig(readFileSync(input.config, 'utf8'));
    const got = parseKernelConfig(readFileSync(join(tree, '.config'), 'utf8'));
    const changed = KEPT_OPTIONS.filter((o) => (want.get(o) ?? 'n') !== (got.get(o) ?? 'n'));
    if (changed.length > 0) {
      fail('KERNEL-CONFIG-DRIFT', 'olddefconfig changed options that decide how code is compiled', {
        detail: changed.map((o) => `CONFIG_${o}: image ${want.get(o) ?? 'n'}, tree ${got.get(o) ?? 'n'}`),
        why: 'the compiler on this machine lacks a feature the image was built with; objects would differ',
        hint: 'the tree was not prepared with the compiler the image was built with (see `suture kernel info`); report it',
      });
    }
  });
  writeFileSync(join(tree, PREPARE_TIMINGS), `${JSON.stringify(timings)}\n`);
}

/** Where a tree keeps how long its preparation took (shown by `suture kernel info`). */
export const PREPARE_TIMINGS = '.suture-prepare.json';

/** The preparation timings of a tree, or {} if unknown. */
export function prepareTimings(tree: string): Record<string, number> {
  try {
    const v = JSON.parse(readFileSync(join(tree, PREPARE_TIMINGS), 'utf8')) as unknown;
    if (v === null || typeof v !== 'object') return {};
    return Object.fromEntries(
      Object.entries(v).filter((e): e is [string, number] => typeof e[1] === 'number'),
    );
  } catch {
    return {};
  }
}

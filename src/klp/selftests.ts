/*
 * The kernel's own livepatch selftests, built for a target kernel: Suture's conformance suite.
 *
 * The target's prepared source tree carries the test modules (`lib/livepatch/test_klp_*.c` on 6.1,
 * `tools/testing/selftests/livepatch/test_modules/` from 6.11 on) and the scripts
 * (`tools/testing/selftests/livepatch/test-*.sh` + `functions.sh`). Debian builds neither
 * (CONFIG_TEST_LIVEPATCH is unset), so they are built here as one external module directory with the
 * kernel's own kbuild and compiler (kbuild.ts's runMake through kernelToolchain), `make -k` so every
 * module that can build does. A module that does not build is reported with its compiler output; it is
 * a failure, never something to skip.
 *
 * The result is a bundle directory for a guest: the scripts as the tree has them and `test_modules/*.ko`.
 * How the scripts find the modules differs by kernel (`modprobe NAME` on 6.1: install them under
 * /lib/modules/$(uname -r) and run depmod; `insmod test_modules/NAME.ko` from the scripts' directory
 * on 6.12), which `loader` says; `guestInstall` is the shell that does either.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';
import { kernelToolchain } from '../kernel/kernel-toolchain.js';
import type { KernelTarget } from '../kernel/target.js';
import { moduleVermagic, runMake } from './kbuild.js';

/** The six scripts issue 11 names as the conformance suite, in the order the selftests' Makefile runs them. */
export const SELFTEST_SCRIPTS = [
  'test-livepatch',
  'test-callbacks',
  'test-shadow-vars',
  'test-state',
  'test-ftrace',
  'test-sysfs',
] as const;

const SCRIPTS_DIR = join('tools', 'testing', 'selftests', 'livepatch');
const MODULE_DIRS = [join(SCRIPTS_DIR, 'test_modules'), join('lib', 'livepatch')];

export interface SelftestSources {
  /** where the test_klp_*.c files are in the tree */
  modulesDir: string;
  /** tools/testing/selftests/livepatch of the tree */
  scriptsDir: string;
  /** the module names (test_klp_…), sorted */
  modules: string[];
  /** which of SELFTEST_SCRIPTS the tree has, and which it does not */
  scripts: string[];
  missing: string[];
  /** `modprobe`: the scripts load modules by name (6.1); `insmod`: from ./test_modules (6.11+) */
  loader: 'modprobe' | 'insmod';
}

/** The selftest sources of a prepared tree; SELFTEST-SOURCES-MISSING when it has none. */
export function selftestSources(tree: string): SelftestSources {
  const scriptsDir = join(tree, SCRIPTS_DIR);
  const rel = MODULE_DIRS.find((d) => existsSync(join(tree, d, 'test_klp_livepatch.c')));
  if (!rel || !existsSync(join(scriptsDir, 'functions.sh')))
    fail('SELFTEST-SOURCES-MISSING', `${tree} has no livepatch selftests`, {
      location: { file: tree },
      why: `looked for test_klp_livepatch.c in ${MODULE_DIRS.join(' and ')} and for ${SCRIPTS_DIR}/functions.sh`,
      hint: 'the kernel source package is incomplete: fetch the kernel again',
    });
  const modulesDir = join(tree, rel);
  const modules = readdirSync(modulesDir)
    .filter((f) => /^test_klp_\w+\.c$/.test(f))
    .map((f) => f.slice(0, -2))
    .sort();
  const has = (s: string) => existsSync(join(scriptsDir, `${s}.sh`));
  return {
    modulesDir,
    scriptsDir,
    modules,
    scripts: SELFTEST_SCRIPTS.filter(has),
    missing: SELFTEST_SCRIPTS.filter((s) => !has(s)),
    loader: rel.startsWith('lib') ? 'modprobe' : 'insmod',
  };
}

export interface SelftestModule {
  name: string;
  /** the built module, absent when it did not build */
  ko?: string;
  /** the compiler's lines about this module (all of make's output when none name it) */
  errors: string[];
}

export interface SelftestBuild {
  sources: SelftestSources;
  /** the bundle: the scripts, `test_modules/*.ko` */
  dir: string;
  modules: SelftestModule[];
  /** every line make printed */
  log: string[];
}

/**
 * Build every test module of `target` into `outDir` (the bundle). Never throws for a module that does not
 * compile: it comes back without `ko` and with its errors; a module with another kernel's vermagic is
 * SELFTEST-VERMAGIC (the tree is not the target's).
 */
export async function buildSelftests(
  target: KernelTarget,
  outDir: string,
  opts: { onOutput?: (l: string) => void; sources?: SelftestSources } = {},
): Promise<SelftestBuild> {
  const sources = opts.sources ?? selftestSources(target.sourceTree);
  const build = join(outDir, 'build');
  mkdirSync(build, { recursive: true });
  for (const m of sources.modules) copyFileSync(join(sources.modulesDir, `${m}.c`), join(build, `${m}.c`));
  const toolchain = await kernelToolchain(target.release);
  const make = (names: string[]) => {
    // test_klp_state3.c includes test_klp_state2.c: every source sits beside the others, as in the tree
    writeFileSync(join(build, 'Kbuild'), `obj-m += ${names.map((m) => `${m}.o`).join(' ')}\n`);
    return runMake(target.sourceTree, build, ['-k', '-j2', 'modules'], {
      cwd: build,
      toolchain,
      ...(opts.onOutput ? { onOutput: opts.onOutput } : {}),
    }).catch((e: Error) =>
      fail('SELFTEST-BUILD-FAILED', `cannot run make for the selftest modules: ${e.message}`, {
        hint: 'install make and the kernel’s compiler',
      }),
    );
  };
  const first = await make(sources.modules);
  const log = [...first.lines];
  // modpost links no module while any object failed: link again the ones that compiled
  const compiled = sources.modules.filter((m) => existsSync(join(build, `${m}.o`)));
  const unlinked = compiled.filter((m) => !existsSync(join(build, `${m}.ko`)));
  if (unlinked.length && compiled.length) log.push(...(await make(compiled)).lines);
  const dir = join(outDir, 'selftests');
  cpSync(sources.scriptsDir, dir, { recursive: true, filter: (f) => !f.includes('test_modules') });
  mkdirSync(join(dir, 'test_modules'), { recursive: true });
  const modules = sources.modules.map((name) => collect(target, build, dir, name, first.lines));
  return { sources, dir, modules, log };
}

/** One module's result: its .ko copied into the bundle, or the compiler's lines about it. */
function collect(
  target: KernelTarget,
  build: string,
  dir: string,
  name: string,
  lines: string[],
): SelftestModule {
  const ko = join(build, `${name}.ko`);
  if (!existsSync(ko)) {
    const own = lines.filter((l) => l.includes(`${name}.`));
    return { name, errors: own.length ? own : lines };
  }
  const vermagic = moduleVermagic(ko).split(' ')[0];
  if (vermagic !== target.release)
    fail('SELFTEST-VERMAGIC', `${name}.ko was built for ${vermagic}, the target is ${target.release}`, {
      location: { file: ko },
      hint: `the source tree ${target.sourceTree} is not prepared for ${target.release}: fetch the kernel again`,
    });
  const out = join(dir, 'test_modules', `${name}.ko`);
  copyFileSync(ko, out);
  return { name, ko: out, errors: [] };
}

/**
 * The guest shell that makes the bundle at `at` usable by the scripts: the modules under
 * /lib/modules/$(uname -r)/extra with depmod (modprobe, and `modinfo NAME`, find them by name on every
 * kernel; the target modules of the Suture scenarios are loaded that way too).
 */
export function guestInstall(at: string): string {
  return [
    'set -e',
    'd=/lib/modules/$(uname -r)/extra/klp-selftests',
    'mkdir -p "$d"',
    `cp ${at}/test_modules/*.ko "$d"/`,
    'depmod -a',
  ].join('\n');
}

/** The guest command that runs one script of the bundle at `at` (bash, from the scripts' directory). */
export function guestScript(at: string, script: string): string {
  // 6.12's functions.sh checks that KDIR exists (the modules were built on the host, against the tree)
  return `cd ${at} && KDIR=${at}/test_modules bash ./${script}.sh`;
}

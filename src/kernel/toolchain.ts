/*
 * How to compile for one kernel: with its own compiler, on the host or inside a build root.
 *
 * kernelToolchain(release) reads the cached kernel's CONFIG_CC_VERSION_TEXT (compiler.ts) and finds
 * that exact compiler build: on the host (`gcc`, or the name the kernel was built with, e.g. `gcc-12`)
 * when the host has it, else in a build root of the kernel's suite (build-root.ts, e.g. trixie's gcc-14
 * on a Debian 12 host). A compiler that is not the kernel's is refused with KERNEL-COMPILER-MISMATCH —
 * never used silently: code from another compiler build may differ from the shipped functions.
 *
 * Every kbuild step for the kernel (preparing its tree, compiling objects, linking a module) must run
 * through `command()` and pass `makeArgs`: inside a root, `command()` wraps the argv in a private mount
 * namespace (`unshare --mount`) where the cache, /tmp and the caller's `reach` directories are bind-mounted
 * at the same paths, /dev and /proc are mounted, and the argv is run under `chroot`, so the prepared
 * tree's absolute paths and scratch directories mean the same inside and out.
 */
import { fail } from '../diagnostic.js';
import {
  ensureBuildRoot,
  ROOT_MIRROR,
  type RootOptions,
  readRootRecord,
  rootPackages,
} from './build-root.js';
import { cacheRoot } from './cache.js';
import { type CompilerId, compilerFromConfig, probeCompiler, sameCompiler } from './compiler.js';
import { type KernelConfig, parseKernelConfig } from './config.js';
import type { Suite } from './release-name.js';
import { hostCodename } from './suites.js';

export interface ToolchainCommand {
  file: string;
  args: string[];
}

export interface Toolchain {
  kind: 'host' | 'build-root';
  /** the compiler named in the kernel's config */
  kernelCompiler: CompilerId;
  /** the compiler that runs: the same build as kernelCompiler (checked) */
  compiler: CompilerId;
  /** the build root's directory (kind `build-root`) */
  root?: string;
  /** arguments every `make` for this kernel must get (e.g. `CC=gcc-12`); the same for prepare and builds */
  makeArgs: string[];
  /** how to run `argv` in `cwd` with this toolchain; `reach`: host directories it must see */
  command(argv: string[], opts?: { cwd?: string; reach?: string[] }): ToolchainCommand;
}

/** Runs argv directly (cwd is the spawner's business). */
function hostCommand(argv: string[]): ToolchainCommand {
  const [file, ...args] = argv;
  if (!file) fail('TOOLCHAIN-EMPTY-COMMAND', 'no command to run');
  return { file, args };
}

// $1 root, $2 n, then n directories to bind, then cwd, then the argv.
const ROOT_SCRIPT = [
  'set -e',
  'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'r=$1; n=$2; shift 2',
  'while [ "$n" -gt 0 ]; do d=$1; shift; n=$((n-1)); mkdir -p "$r$d"; mount --bind "$d" "$r$d"; done',
  'mkdir -p "$r/proc" "$r/dev"',
  'mount -t proc proc "$r/proc"',
  'mount --rbind /dev "$r/dev"',
  'cwd=$1; shift',
  `exec chroot "$r" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"`,
].join('\n');

/** Directories to bind, outermost first, without ones already inside another. */
export function bindSet(dirs: string[]): string[] {
  const norm = [
    ...new Set(dirs.map((d) => d.replace(/\/+$/, '')).filter((d) => d.startsWith('/') && d.length > 1)),
  ];
  norm.sort((a, b) => a.length - b.length);
  const out: string[] = [];
  for (const d of norm) if (!out.some((o) => d === o || d.startsWith(`${o}/`))) out.push(d);
  return out;
}

/** The argv that runs `argv` inside `root` with `reach` (plus the cache and /tmp) visible. */
export function rootCommand(root: string, argv: string[], cwd = '/', reach: string[] = []): ToolchainCommand {
  if (argv.length === 0) fail('TOOLCHAIN-EMPTY-COMMAND', 'no command to run');
  const binds = bindSet([cacheRoot(), '/tmp', ...reach, ...(cwd !== '/' ? [cwd] : [])]);
  return {
    file: 'unshare',
    args: [
      '--mount',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      ROOT_SCRIPT,
      'suture-root',
      root,
      String(binds.length),
      ...binds,
      cwd,
      ...argv,
    ],
  };
}

export interface ToolchainOptions extends RootOptions {
  /** the host's codename (default /etc/os-release) */
  hostSuite?: string;
  /** how a program's `--version` is asked on the host (default: run it) */
  probeHost?: (program: string) => CompilerId | undefined;
  /** the root a cached kernel's tree was prepared in: used (its gcc checked) while it is in the cache */
  knownRoot?: string;
}

function mismatch(kernel: CompilerId, found: CompilerId | undefined, where: string, hint: string): never {
  return fail(
    'KERNEL-COMPILER-MISMATCH',
    `the kernel was built with \`${kernel.text}\`; ${where} has ${found ? `\`${found.text}\`` : 'no such compiler'}`,
    {
      why: 'a livepatch carries functions compiled here in place of the shipped ones; another compiler build may generate different code, which the verify stage would reject or, worse, miss',
      hint,
    },
  );
}

/** The toolchain of a kernel whose config is `cfg` and whose packages come from `suite`. */
export async function toolchainForConfig(
  cfg: KernelConfig,
  suite: Suite,
  opts: ToolchainOptions = {},
): Promise<Toolchain> {
  const kc = compilerFromConfig(cfg);
  if (!kc) {
    fail(
      'KERNEL-COMPILER-UNKNOWN',
      'the kernel config does not name its compiler (no CONFIG_CC_VERSION_TEXT)',
      {
        why: 'Suture compiles every kernel with the compiler it was built with, and must know which that is',
      },
    );
  }
  const probeHost = opts.probeHost ?? ((p: string) => probeCompiler(p));
  let seen: CompilerId | undefined;
  for (const program of ['gcc', kc.program, `gcc-${kc.major}`]) {
    const cc = probeHost(program);
    seen ??= cc;
    if (cc && sameCompiler(cc, kc))
      return {
        kind: 'host',
        kernelCompiler: kc,
        compiler: cc,
        makeArgs: program === 'gcc' ? [] : [`CC=${program}`],
        command: hostCommand,
      };
  }
  if ((opts.hostSuite ?? hostCodename()) === suite) {
    mismatch(
      kc,
      seen,
      'this host',
      `install the compiler the kernel was built with (\`apt-get install gcc-${kc.major}\`, version ${kc.build})`,
    );
  }
  const root =
    opts.knownRoot && readRootRecord(opts.knownRoot)
      ? opts.knownRoot
      : await ensureBuildRoot(
          { suite, packages: rootPackages(kc.major), mirror: ROOT_MIRROR, compiler: kc.build },
          opts,
        );
  const inRoot = (opts.probe ?? ((d: string) => probeCompiler('gcc', ['chroot', d])))(root);
  if (!inRoot || !sameCompiler(inRoot, kc)) {
    mismatch(
      kc,
      inRoot,
      `the ${suite} build root (${root})`,
      `the ${suite} archive no longer ships that compiler build; this kernel cannot be patched with a matching compiler`,
    );
  }
  return {
    kind: 'build-root',
    kernelCompiler: kc,
    compiler: inRoot,
    root,
    makeArgs: [],
    command: (argv, o = {}) => rootCommand(root, argv, o.cwd, o.reach),
  };
}

/** Parse a config file's text and find its toolchain (for callers holding the text). */
export function toolchainForConfigText(
  text: string,
  suite: Suite,
  opts: ToolchainOptions = {},
): Promise<Toolchain> {
  return toolchainForConfig(parseKernelConfig(text), suite, opts);
}

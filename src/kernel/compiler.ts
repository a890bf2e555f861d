/*
 * The compiler a kernel was built with, and whether a given compiler is that one.
 *
 * kbuild records the compiler's first `--version` line in the config as CONFIG_CC_VERSION_TEXT, e.g.
 * `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0` or `x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0`. The
 * first word is only the name it was invoked by (`gcc`, `gcc-12` and `x86_64-linux-gnu-gcc-12` are one
 * binary on Debian); the rest — vendor, package version, GCC version — identifies the build of the
 * compiler, and that is what must match: another GCC (even a minor update) may emit different code for
 * the same source, and a livepatch carries code that must be what the shipped kernel's compiler made.
 * Before a kernel is fetched, its headers package's dependency (`gcc-12`, `linux-compiler-gcc-12-x86`)
 * names the compiler's major version.
 */
import { spawnSync } from 'node:child_process';
import type { KernelConfig } from './config.js';

export interface CompilerId {
  /** the whole first `--version` line */
  text: string;
  /** the name it was invoked by: `gcc-12` */
  program: string;
  /** the text after the program name: `(Debian 12.2.0-14+deb12u1) 12.2.0`; what must match */
  build: string;
  /** `gcc` or `clang` */
  family: 'gcc' | 'clang' | 'unknown';
  /** GCC/clang major version, e.g. 12 */
  major: number;
}

/** Parse a compiler's first `--version` line (or CONFIG_CC_VERSION_TEXT). */
export function parseCompilerText(text: string): CompilerId {
  const t = text.trim();
  const sp = t.indexOf(' ');
  const program = sp < 0 ? t : t.slice(0, sp);
  const build = sp < 0 ? '' : t.slice(sp + 1).trim();
  const family = /clang/.test(t) ? 'clang' : /gcc|GCC/.test(t) ? 'gcc' : 'unknown';
  const major = Number(/(\d+)\.\d+(?:\.\d+)?\s*$/.exec(t)?.[1] ?? /(\d+)\.\d+\.\d+/.exec(t)?.[1] ?? 0);
  return { text: t, program, build, family, major };
}

/** The kernel's compiler from its config, or undefined if the config does not name it. */
export function compilerFromConfig(cfg: KernelConfig): CompilerId | undefined {
  const v = cfg.get('CC_VERSION_TEXT');
  if (!v) return undefined;
  const text = v.replace(/^"(.*)"$/, '$1');
  return text ? parseCompilerText(text) : undefined;
}

/** Same compiler build (the invoked name may differ: gcc and gcc-12 are one binary). */
export function sameCompiler(a: CompilerId, b: CompilerId): boolean {
  return a.build === b.build && a.build.length > 0;
}

/** `gcc-12` from a headers package's Depends (`gcc-12`, or `linux-compiler-gcc-12-x86` on 6.1). */
export function compilerFromDepends(depends: string): string | undefined {
  const m = /(?:^|[\s,|])(?:linux-compiler-)?((?:gcc|clang)-\d+)(?:-x86)?(?=$|[\s,(|])/.exec(depends);
  return m?.[1];
}

/** The first `--version` line of `program`, run through `argv` (e.g. a chroot prefix), or undefined. */
export function probeCompiler(program: string, prefix: string[] = []): CompilerId | undefined {
  const [file, ...args] = [...prefix, program, '--version'];
  if (!file) return undefined;
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) return undefined;
  const first = r.stdout.split('\n')[0];
  return first ? parseCompilerText(first) : undefined;
}

/*
 * Compiling one translation unit exactly as kbuild does, into a scratch directory.
 *
 * The livepatch is only as trustworthy as the claim "this object is what the shipped kernel was built
 * from". So the command line is not reconstructed by hand: it is taken from kbuild itself — `make -n V=1
 * <dir>/<file>.o` in the prepared tree prints the recipe (gcc with every flag the image's config implies,
 * then objtool with the same options) without running it. The only additions are
 * `-ffunction-sections -fdata-sections` (through KCFLAGS, exactly where kbuild puts user flags), so each
 * function and datum gets its own section for the object diff, and `-aux-info` (a prototypes file next to
 * the object, for check/signature-changed; the object is the same byte for byte outside its debug
 * sections, where gcc records its switches in DW_AT_producer).
 *
 * The prepared tree is never written: the object, its dependency file and objtool's edits go to the
 * scratch directory; a patched unit is compiled from its overlay copy, with the overlay's include
 * directories searched before the tree's (so patched headers win) and the original source directory
 * searched for quoted includes (so `#include "internal.h"` still finds the tree's file).
 *
 * Every command (the `make -n`, the compiler, objtool) runs through the kernel's toolchain when one is
 * given (kernel/toolchain.ts): the host for Debian 12 kernels, a build root for trixie's gcc-14 ones, so
 * the recorded `gcc` is the kernel's own compiler build and the tree's objtool runs against the libraries
 * it was linked with. Without one, commands run on the host (the tree's compiler guard refuses a
 * foreign gcc).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { parse as parseShell } from 'shell-quote';
import { z } from 'zod';
import { fail, SutureError } from '../diagnostic.js';
import { cacheRoot } from '../kernel/cache.js';
import type { Toolchain } from '../kernel/toolchain.js';

export const SECTION_FLAGS = '-ffunction-sections -fdata-sections';

/** The compiler argv as kbuild has it without our KCFLAGS: the exact command the shipped kernel used. */
export function withoutSectionFlags(cc: readonly string[]): string[] {
  const ours = new Set(SECTION_FLAGS.split(' '));
  return cc.filter((a) => !ours.has(a));
}

/** kbuild's recipe for one object: the compiler command and the objtool command that follows it. */
export interface KbuildRecipe {
  /** object path relative to the tree, e.g. `fs/proc/meminfo.o` */
  object: string;
  /** source path relative to the tree, e.g. `fs/proc/meminfo.c` */
  source: string;
  /** compiler argv (argv[0] is the compiler), run with cwd = tree */
  cc: string[];
  /** objtool argv, if kbuild runs it on this object */
  objtool?: string[];
  /** built as part of a module (`-DMODULE`) */
  module: boolean;
  /** KBUILD_MODNAME: the module name for module objects */
  modname?: string;
}

const recipeCache = new Map<string, KbuildRecipe>();

const recipeSchema = z.object({
  object: z.string(),
  source: z.string(),
  cc: z.array(z.string()).min(1),
  objtool: z.array(z.string()).optional(),
  module: z.boolean(),
  modname: z.string().optional(),
});

/**
 * Where a recipe is remembered across runs: keyed by the tree's path (a cache entry whose name changes
 * whenever its content does), the object and our flags. `make -n` costs 1–4 s; a remembered one is free.
 */
function recipeFile(tree: string, object: string): string {
  const key = createHash('sha256').update(`${tree}\0${object}\0${SECTION_FLAGS}`).digest('hex');
  return join(cacheRoot(), 'recipes', `${key}.json`);
}

/** The argv that runs `argv` with the toolchain (in `cwd`, seeing `reach`), or as is without one. */
export function toolchainArgv(
  argv: string[],
  toolchain: Toolchain | undefined,
  cwd: string,
  reach: string[] = [],
): { file: string; args: string[] } {
  if (!toolchain) return { file: argv[0]!, args: argv.slice(1) };
  return toolchain.command(argv, { cwd, reach });
}

/** Ask kbuild (dry run, the tree is not touched) how it compiles `object`. */
export function kbuildRecipe(tree: string, object: string, toolchain?: Toolchain): KbuildRecipe {
  const key = `${tree}\0${object}`;
  const cached = recipeCache.get(key);
  if (cached) return cached;
  const file = recipeFile(tree, object);
  if (existsSync(file)) {
    let parsed: ReturnType<typeof recipeSchema.safeParse> | undefined;
    try {
      parsed = recipeSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    } catch {
      parsed = undefined; // a torn or foreign file: ask kbuild again
    }
    if (parsed?.success) {
      recipeCache.set(key, parsed.data);
      return parsed.data;
    }
  }
  const make = toolchainArgv(
    ['make', '-C', tree, ...(toolchain?.makeArgs ?? []), '-n', 'V=1', `KCFLAGS=${SECTION_FLAGS}`, object],
    toolchain,
    tree,
  );
  const r = spawnSync(make.file, make.args, {
    cwd: tree,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const out = `${r.stdout ?? ''}`;
  if (r.error || r.status !== 0) {
    fail('KBUILD-NO-RECIPE', `kbuild has no rule to build ${object}`, {
      location: { file: object.replace(/\.o$/, '.c') },
      detail: `${r.stderr ?? r.error?.message ?? ''}`.trim().split('\n').slice(-6),
      why: 'the file is not part of the kernel build (wrong path, or a file kbuild does not compile)',
      hint: 'patch C files that the target kernel is built from',
    });
  }
  const recipe = parseRecipe(out, object);
  recipeCache.set(key, recipe);
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(recipe));
    renameSync(tmp, file);
  } catch {
    // remembering is an optimisation: a read-only cache just means asking kbuild again next time
  }
  return recipe;
}

/** Pick the compile recipe for `object` out of `make -n V=1` output. */
export function parseRecipe(makeOutput: string, object: string): KbuildRecipe {
  const obj = object.replace(/^\.\//, '');
  for (const line of makeOutput.split('\n')) {
    if (!line.includes(` -o ${obj} `) || !line.includes(' -c ')) continue;
    // kbuild prints `set -e; echo '  <cmd>'; trap ...; trap ... PIPE; <cmd>`: the command is after the traps
    const at = line.lastIndexOf(" PIPE' PIPE;");
    const cmd = at >= 0 ? line.slice(at + " PIPE' PIPE;".length) : line;
    const words = parseShell(cmd);
    const commands: string[][] = [[]];
    for (const w of words) {
      if (typeof w === 'string') commands.at(-1)!.push(w);
      else if ('op' in w && w.op === 'glob') commands.at(-1)!.push(w.pattern);
      else commands.push([]); // `;`, `>`, `&&`: the pieces we need are whole simple commands
    }
    const cc = commands.find((c) => c.includes('-c') && c.includes('-o'));
    if (!cc) continue;
    const oi = cc.indexOf('-o');
    if (cc[oi + 1] !== obj) continue;
    const source = cc.at(-1)!;
    if (!/\.c$/.test(source)) continue;
    const objtool = commands.find(
      (c) => c[0] !== undefined && basename(c[0]) === 'objtool' && c.at(-1) === obj,
    );
    const modname = cc.find((a) => a.startsWith('-DKBUILD_MODNAME='))?.slice('-DKBUILD_MODNAME='.length);
    return {
      object: obj,
      source,
      cc,
      objtool,
      module: cc.includes('-DMODULE'),
      modname: modname?.replace(/^"|"$/g, ''),
    };
  }
  fail('KBUILD-NO-RECIPE', `kbuild printed no compile command for ${obj}`, {
    location: { file: obj.replace(/\.o$/, '.c') },
    why: 'only C translation units can be compiled on their own',
    hint: 'patch C files that the target kernel is built from',
  });
}

export interface CompileRequest {
  tree: string;
  recipe: KbuildRecipe;
  /** where the object goes (absolute) */
  outObject: string;
  /** the source to compile instead of the tree's (absolute): the overlay copy of a patched unit */
  source?: string;
  /** overlay root holding patched headers at their tree-relative paths */
  overlay?: string;
  /** directories searched after the kernel's own (`-I`, last): the patch author's headers */
  includeDirs?: readonly string[];
  /** the kernel's toolchain the compiler and objtool run with (default: the host) */
  toolchain?: Toolchain;
}

export interface CompiledObject {
  object: string;
  /** files the unit includes, relative to the tree when inside it (from the compiler's dependency file) */
  deps: string[];
  ms: number;
  /** compiler warnings, if any */
  warnings: string;
  /** gcc's `-aux-info` file next to the object: one prototype line per function declared or defined */
  prototypes: string;
}

/** Where gcc writes the prototypes (`-aux-info`) of an object: `meminfo.o` → `meminfo.o.aux`. */
export function prototypesPath(object: string): string {
  return `${object}.aux`;
}

/**
 * The argv with `-aux-info <file>` added before the source: gcc then writes every function's prototype
 * as it saw it (types normalised, macros expanded). It only writes a file; the object code is the same.
 */
export function withPrototypes(argv: readonly string[], object: string): string[] {
  return [...argv.slice(0, -1), '-aux-info', prototypesPath(object), argv.at(-1)!];
}

function run(
  argv: string[],
  cwd: string,
  req: CompileRequest,
): Promise<{ status: number | null; stderr: string; stdout: string }> {
  // inside a build root the compiler sees only what is bound in: the outputs, the overlay, the patched
  // source and the caller's include directories (the patch author's headers live in the checkout)
  const reach = [dirname(req.outObject), ...(req.overlay ? [req.overlay] : []), ...(req.includeDirs ?? [])];
  if (req.source) reach.push(dirname(req.source));
  const cmd = toolchainArgv(argv, req.toolchain, cwd, reach);
  return new Promise((resolve, reject) => {
    const p = spawn(cmd.file, cmd.args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stderr, stdout }));
  });
}

/** The compiler argv for a request: kbuild's, with outputs redirected and the overlay searched first. */
export function compilerArgv(req: CompileRequest): string[] {
  const { recipe } = req;
  const depFile = join(dirname(req.outObject), `.${basename(req.outObject)}.d`);
  const out: string[] = [];
  for (let i = 0; i < recipe.cc.length; i++) {
    const a = recipe.cc[i]!;
    if (a.startsWith('-Wp,-MMD,') || a.startsWith('-Wp,-MD,')) {
      out.push(`-Wp,-MMD,${depFile}`);
    } else if (a === '-o') {
      out.push('-o', req.outObject);
      i++;
    } else if (i === recipe.cc.length - 1 && a === recipe.source) {
      for (const d of req.includeDirs ?? []) out.push(`-I${d}`);
      if (req.source) out.push('-iquote', dirname(join(req.tree, recipe.source)));
      out.push(req.source ?? a);
    } else if (req.overlay && a.startsWith('-I') && a.length > 2 && !isAbsolute(a.slice(2))) {
      out.push(`-I${join(req.overlay, a.slice(2))}`, a);
    } else {
      out.push(a);
    }
  }
  return out;
}

/** A compile that failed: the diagnostic plus the compiler's full error output. */
export class CompileFailure extends SutureError {
  readonly stderr: string;
  constructor(stderr: string, d: ConstructorParameters<typeof SutureError>[0]) {
    super(d);
    this.stderr = stderr;
  }
}

/** Compile one unit (then objtool, as kbuild does). Throws COMPILE-FAILED with the compiler's errors. */
export async function compileObject(req: CompileRequest): Promise<CompiledObject> {
  const t0 = performance.now();
  mkdirSync(dirname(req.outObject), { recursive: true });
  const argv = withPrototypes(compilerArgv(req), req.outObject);
  const cc = await run(argv, req.tree, req);
  if (cc.status !== 0) {
    throw new CompileFailure(cc.stderr, {
      code: 'COMPILE-FAILED',
      message: `${req.recipe.source} does not compile${req.source ? ' after patching' : ''}`,
      location: { file: req.recipe.source },
      detail: cc.stderr.trim().split('\n').slice(0, 40),
      why: 'the compiler rejected the unit with the target kernel configuration',
      hint: req.source
        ? 'fix the diff so that it compiles against this exact kernel source'
        : 'the prepared source tree is broken: re-prepare the kernel cache',
    });
  }
  if (req.recipe.objtool) {
    const tool = req.recipe.objtool.map((a, i) =>
      i === req.recipe.objtool!.length - 1 ? req.outObject : i === 0 ? join(req.tree, a) : a,
    );
    const ot = await run(tool, req.tree, req);
    if (ot.status !== 0) {
      fail('COMPILE-OBJTOOL-FAILED', `objtool rejected ${req.recipe.object}`, {
        location: { file: req.recipe.source },
        detail: ot.stderr.trim().split('\n').slice(0, 20),
        hint: 'the compiled object breaks one of objtool`s rules (stack validation, retpolines, uaccess)',
      });
    }
  }
  const depFile = join(dirname(req.outObject), `.${basename(req.outObject)}.d`);
  return {
    object: req.outObject,
    deps: parseDepFile(readFileSync(depFile, 'utf8'), req.tree),
    ms: performance.now() - t0,
    warnings: cc.stderr,
    prototypes: prototypesPath(req.outObject),
  };
}

/** The prerequisites of a Make-format dependency file (`-MMD` output), relative to `tree` when inside. */
export function parseDepFile(text: string, tree: string): string[] {
  const body = text.replace(/\\\n/g, ' ');
  const colon = body.indexOf(': ');
  const words = body
    .slice(colon + 2)
    .split(/\s+/)
    .filter(Boolean);
  const out = new Set<string>();
  for (const w of words) {
    if (w.endsWith(':')) break; // a phony target line
    const rel = isAbsolute(w) ? relative(tree, w) : w.replace(/^\.\//, '');
    out.add(rel.startsWith('..') ? w : rel);
  }
  return [...out];
}

/**
 * Names a failed compile says are missing: undeclared identifiers, unknown types, implicit functions,
 * absent struct members. Used to explain a stable fix that needs a header from the same release.
 */
export function missingDefinitions(stderr: string): string[] {
  const names = new Set<string>();
  const patterns = [
    /error: [‘'`]([\w]+)[’'`] undeclared/g,
    /error: implicit declaration of function [‘'`]([\w]+)[’'`]/g,
    /error: unknown type name [‘'`]([\w]+)[’'`]/g,
    /error: [‘'`](?:struct |union |enum )?[\w ]+[’'`] has no member named [‘'`]([\w]+)[’'`]/g,
    /error: invalid use of undefined type [‘'`]([\w ]+)[’'`]/g,
    /error: too (?:many|few) arguments to function [‘'`]([^’'`]+)[’'`]/g,
    /error: conflicting types for [‘'`]([\w]+)[’'`]/g,
  ];
  for (const re of patterns) for (const m of stderr.matchAll(re)) names.add(m[1]!);
  // a function whose return type changed in a header: name the call on the quoted source line
  for (const m of stderr.matchAll(
    /error: (?:void value not ignored as it ought to be|invalid use of void expression)\n\s*\d+ \|(.*)/g,
  )) {
    const call = [...m[1]!.matchAll(/([A-Za-z_]\w*)\s*\(/g)]
      .map((c) => c[1]!)
      .find((n) => !['if', 'while', 'for', 'switch', 'return', 'sizeof'].includes(n));
    if (call) names.add(`${call} (return type)`);
  }
  for (const m of stderr.matchAll(/error: storage size of [‘'`]([\w]+)[’'`] isn[’']t known/g)) {
    names.add(`${m[1]!} (incomplete type)`);
  }
  // a type that changed in a header shows up as a mismatched argument, not as a missing name
  for (const m of stderr.matchAll(
    /error: passing argument \d+ of [‘'`]([\w]+)[’'`] from incompatible pointer type/g,
  )) {
    names.add(`${m[1]!} (argument type)`);
  }
  return [...names];
}

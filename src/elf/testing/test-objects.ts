/*
 * Test support: real kernel objects, compiled by the tests themselves from the target's prepared tree.
 *
 * The ELF engine is checked against binutils on what it will really meet: objects of the target kernel
 * compiled with the image's configuration, with and without -ffunction-sections -fdata-sections, after
 * objtool (which adds .orc_unwind, .retpoline_sites, .return_sites ... exactly as kbuild does).
 *
 * The recipes come from kbuild itself (`make -n V=1 <dir>/`, a dry run that touches nothing); only the
 * output paths are rewritten, so the prepared tree is never written. Objects land in a cache directory
 * keyed by the tree, its .config and the flags (`$SUTURE_CACHE/elf-test-objects/...`), so later runs (fuzz, benchmarks)
 * reuse them; each object is written to a temporary name and renamed, so concurrent runs are safe.
 *
 * Default set (CI, a few minutes on 2 cores): all of fs/proc plus a fixed sample of kernel/ and mm/, in
 * both flavours. SUTURE_ELF_FULL=1 compiles every object of fs/proc, kernel/ and mm/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseShell } from 'shell-quote';

export const FLAVOURS = { plain: '', sections: '-ffunction-sections -fdata-sections' } as const;
export type Flavour = keyof typeof FLAVOURS;

export const SAMPLE: Record<string, string[] | 'all'> = {
  'fs/proc/': 'all',
  'kernel/': [
    'kernel/fork.o',
    'kernel/sys.o',
    'kernel/kallsyms.o',
    'kernel/livepatch/core.o',
    'kernel/livepatch/transition.o',
    'kernel/livepatch/patch.o',
    'kernel/workqueue.o',
    'kernel/time/timer.o',
    'kernel/module/main.o',
  ],
  'mm/': ['mm/mmap.o', 'mm/vmalloc.o', 'mm/slub.o', 'mm/filemap.o', 'mm/memory.o', 'mm/shmem.o', 'mm/swap.o'],
};

export interface Recipe {
  object: string;
  cc: string[];
  objtool: string[] | undefined;
}

export interface TestObject {
  /** object path in the tree, e.g. fs/proc/meminfo.o */
  object: string;
  flavour: Flavour;
  /** the compiled file */
  path: string;
}

/** kbuild's compile (and objtool) commands for every object under `dir`, from a dry run. */
export function dryRunRecipes(tree: string, dir: string, kcflags: string): Map<string, Recipe> {
  const args = ['-C', tree, '-n', 'V=1', dir];
  if (kcflags) args.push(`KCFLAGS=${kcflags}`);
  const r = spawnSync('make', args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`make -n ${dir} failed: ${(r.stderr ?? '').slice(-2000)}`);
  const recipes = new Map<string, Recipe>();
  for (const line of r.stdout.split('\n')) {
    for (const part of line.split(/;\s*/)) {
      const cmd = part.trim();
      if (cmd.startsWith('gcc ') && cmd.includes(' -c -o ')) {
        const argv = parseShell(cmd).filter((t): t is string => typeof t === 'string');
        const o = argv.indexOf('-o');
        const object = argv[o + 1];
        const source = argv[argv.length - 1];
        if (!object?.endsWith('.o') || !source?.endsWith('.c')) continue;
        const prev = recipes.get(object);
        recipes.set(object, { object, cc: argv, objtool: prev?.objtool });
      } else if (cmd.startsWith('./tools/objtool/objtool ')) {
        const argv = parseShell(cmd).filter((t): t is string => typeof t === 'string');
        const object = argv[argv.length - 1];
        if (!object?.endsWith('.o')) continue;
        const prev = recipes.get(object);
        if (prev) prev.objtool = argv;
        else recipes.set(object, { object, cc: [], objtool: argv });
      }
    }
  }
  for (const [k, v] of recipes) if (v.cc.length === 0) recipes.delete(k);
  return recipes;
}

function run(argv: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`${argv.slice(0, 1).join(' ')} exited ${code}: ${err.slice(-2000)}`)),
    );
  });
}

async function compile(tree: string, recipe: Recipe, out: string): Promise<void> {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp.o`;
  const cc = recipe.cc.map((t) => (t.startsWith('-Wp,-MMD,') ? `-Wp,-MMD,${tmp}.d` : t));
  cc[cc.indexOf('-o') + 1] = tmp;
  try {
    await run(cc, tree);
    if (recipe.objtool) await run([...recipe.objtool.slice(0, -1), tmp], tree);
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.d`, { force: true });
  }
}

/** Compile (or reuse) the test objects of `tree`. */
export async function kernelTestObjects(
  tree: string,
  opts: { full?: boolean; flavours?: Flavour[] } = {},
): Promise<TestObject[]> {
  const full = opts.full ?? process.env.SUTURE_ELF_FULL === '1';
  const cacheRoot = process.env.SUTURE_CACHE || join(homedir(), '.cache', 'suture');
  // keyed by the tree and its configuration: a tree prepared again differently never reuses old objects
  const config = existsSync(join(tree, '.config')) ? readFileSync(join(tree, '.config')) : Buffer.alloc(0);
  const key = createHash('sha256').update(tree).update('\0').update(config).digest('hex').slice(0, 16);
  const out: TestObject[] = [];
  const jobs: (() => Promise<void>)[] = [];
  for (const flavour of opts.flavours ?? (Object.keys(FLAVOURS) as Flavour[])) {
    const base = join(cacheRoot, 'elf-test-objects', key, flavour);
    for (const [dir, pick] of Object.entries(SAMPLE)) {
      const recipes = dryRunRecipes(tree, dir, FLAVOURS[flavour]);
      const names =
        full || pick === 'all' ? [...recipes.keys()].filter((o) => o.startsWith(dir)).sort() : pick;
      for (const object of names) {
        const recipe = recipes.get(object);
        if (!recipe) throw new Error(`kbuild has no recipe for ${object} in ${dir}`);
        const path = join(base, object);
        out.push({ object, flavour, path });
        if (!existsSync(path)) jobs.push(() => compile(tree, recipe, path));
      }
    }
  }
  // two compilers at a time: the machine has two cores
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/*
 * The files of this checkout that make Suture run elsewhere: package.json, bin/, dist/ without tests
 * and source maps, and the production dependency closure of node_modules without what a package
 * never loads (tests, docs, C sources, build intermediates). The VM's suture layer (initramfs.ts)
 * carries them to /opt/suture in the guest; the release tarball (package/) ships the same set.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../diagnostic.js';

/** The checkout this code runs from (dist/vm/suture-files.js → ../..). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Packages the `suture` command needs at run time: only needed by tests, builds or editors otherwise. */
const DEV_ONLY = [/^typescript$/, /^@biomejs\//, /^@types\//, /^@typescript\//, /^playwright(-core)?$/];
const SKIP_DIRS = new Set(['node_modules', '.deps', 'obj', 'obj.target', '.github']);
/** top-level folders of a package that its code never loads */
const SKIP_TOP = new Set([
  'test',
  'tests',
  '__tests__',
  'bench',
  'benchmark',
  'benchmarks',
  'example',
  'examples',
  'docs',
  'coverage',
]);
const SKIP_FILE = /(\.md|\.d\.[mc]?ts|\.map|\.a|\.o|\.c|\.cc|\.cpp|\.h|\.gyp|\.gypi|\.mk|Makefile)$/;
/** native packages whose sources and build intermediates are not needed to run */
const NATIVE_SKIP: Record<string, string[]> = { 'better-sqlite3': ['deps', 'src', 'build/Release/obj'] };

interface PackageJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function readPkg(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Production dependency closure as package directories, resolved as Node does (nearest node_modules). */
export function productionPackages(root: string): string[] {
  const found = new Set<string>();
  const visit = (fromDir: string, name: string, optional: boolean) => {
    if (DEV_ONLY.some((r) => r.test(name))) return;
    let d = fromDir;
    for (;;) {
      const cand = join(d, 'node_modules', name);
      if (existsSync(join(cand, 'package.json'))) {
        if (found.has(cand)) return;
        found.add(cand);
        const pkg = readPkg(cand);
        for (const dep of Object.keys(pkg.dependencies ?? {})) visit(cand, dep, false);
        for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(cand, dep, true);
        return;
      }
      if (resolve(d) === resolve(root) || dirname(d) === d) break;
      d = dirname(d);
    }
    if (!optional) {
      fail(
        'VM-SUTURE-DEPS',
        `dependency ${name} (needed from ${relative(root, fromDir) || '.'}) is not installed`,
        {
          hint: 'run npm install in the checkout',
        },
      );
    }
  };
  const pkg = readPkg(root);
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(root, dep, false);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(root, dep, true);
  return [...found].sort();
}

/** The files under `dir` (sorted), leaving out what `skip` says (paths relative to `base`). */
export async function walkFiles(
  dir: string,
  skip: (rel: string, isDir: boolean) => boolean,
  base = dir,
): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const rel = relative(base, p);
    if (e.isDirectory()) {
      if (!skip(rel, true)) out.push(...(await walkFiles(p, skip, base)));
    } else if (e.isFile() && !skip(rel, false)) {
      out.push(p);
    }
  }
  return out.sort();
}

/** Where Suture lives in the VM. */
export const VM_SUTURE_DIR = '/opt/suture';

export async function sutureFiles(root = repoRoot()): Promise<string[]> {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) {
    fail('VM-SUTURE-UNBUILT', `${root}/dist has no cli/main.js`, { hint: 'run npm run build first' });
  }
  const files = [join(root, 'package.json')];
  files.push(...(await walkFiles(join(root, 'bin'), () => false)));
  files.push(
    ...(await walkFiles(join(root, 'dist'), (rel, isDir) => !isDir && /\.(test\.js|map)$/.test(rel))),
  );
  for (const pkg of productionPackages(root)) {
    const native = NATIVE_SKIP[readPkg(pkg).name ?? ''] ?? [];
    files.push(
      ...(await walkFiles(pkg, (rel, isDir) =>
        isDir
          ? SKIP_DIRS.has(basename(rel)) || SKIP_TOP.has(rel) || native.includes(rel)
          : SKIP_FILE.test(rel) && rel !== 'package.json',
      )),
    );
  }
  return files;
}

/*
 * Units: which translation units a diff touches, and which running object each one ends up in.
 *
 * A changed `.c` file is one unit: its object (`fs/proc/meminfo.o`) and its target — `vmlinux`, or the
 * module it is linked into (`fuse` for `fs/fuse/dev.o`). The target is kbuild's answer, not a guess from
 * the path: kbuild's recipe compiles module objects with `-DMODULE` and names the module in
 * `KBUILD_MODNAME`; the module must also be one the image ships (its `modules.order`), whose debug copy is
 * then `<debugModulesDir>/<modules.order entry>`.
 *
 * A changed header is not compiled on its own: it is followed to the units that include it. Without a
 * full build there are no `.cmd` files for every object, so candidates are the changed `.c` files, the
 * `.c` files next to the header that include it by its quoted name, and — for headers under an
 * `include/` directory — the `.c` files that include it by its `<path>`; after compiling, each unit's
 * dependency file (what kbuild's `.cmd` files are made from) confirms it. A header included by more than
 * a handful of units is refused: such a change is almost always a data-structure or inline change that a
 * livepatch cannot carry, and the compile would not be "seconds".
 *
 * Files that never reach the kernel image (Documentation/, tools/, samples/, scripts/) are ignored and
 * reported; assembly, Makefiles and Kconfig are refused. A file the diff adds is compiled as part of the
 * changed units that #include it (a new header, a new .c included by a changed one: it lives in the
 * overlay, found before the tree); a new .c nothing includes is a unit of its own and refused
 * (UNIT-NEW-FILE: it needs a Makefile change). A deleted file is ignored when nothing built still
 * #includes it after the patch, and refused when something does or when it is a built unit itself.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { refuse } from '../check/refusal.js';
import { MAX_HEADER_UNITS, unitHeaderWide } from '../check/source/unit-header-wide.js';
import { unitNewFile } from '../check/source/unit-new-file.js';
import { unitNone } from '../check/source/unit-none.js';
import { unitNotBuilt } from '../check/source/unit-not-built.js';
import { type UnsupportedChange, unitUnsupported } from '../check/source/unit-unsupported.js';
import { isSutureError } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import type { Toolchain } from '../kernel/toolchain.js';
import { type KbuildRecipe, kbuildRecipe } from './compile.js';
import type { AppliedFile } from './diff.js';

export { MAX_HEADER_UNITS };

export interface Unit {
  /** tree-relative source, e.g. `fs/proc/meminfo.c` */
  source: string;
  /** tree-relative object, e.g. `fs/proc/meminfo.o` */
  object: string;
  /** `vmlinux` or the module name as the kernel knows it (`fuse`, `nf_conntrack`) */
  target: string;
  /** for module targets: the module's path in modules.order, e.g. `kernel/fs/fuse/fuse.ko` */
  modulePath?: string;
  /** kbuild's recipe for the object */
  recipe: KbuildRecipe;
  /** the patched copy of the source when the .c itself changed */
  patchedSource?: string;
  /** headers of the diff that made this unit a candidate */
  viaHeaders: string[];
}

export interface HeaderFollow {
  header: string;
  /** candidate units (tree-relative sources) */
  candidates: string[];
}

export interface UnitPlan {
  units: Unit[];
  headers: HeaderFollow[];
  /** changed files that do not reach the kernel image, with why */
  ignored: { path: string; why: string }[];
}

const OUTSIDE_IMAGE =
  /^(Documentation|tools|samples|scripts|LICENSES|usr)\/|^(MAINTAINERS|CREDITS|README|COPYING)$/;

/** Module name (underscores) → modules.order entry, from the image's module list. */
export function readModuleOrder(modulesDir: string): Map<string, string> {
  const map = new Map<string, string>();
  const file = join(modulesDir, 'modules.order');
  if (!existsSync(file)) return map;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const p = line.trim();
    if (!p.endsWith('.ko')) continue;
    map.set(basename(p, '.ko').replace(/-/g, '_'), p);
  }
  return map;
}

/** The target of one compiled unit, from kbuild's recipe and the image's module list. */
export function unitTarget(
  recipe: KbuildRecipe,
  modules: Map<string, string>,
): { target: string; modulePath?: string } {
  if (!recipe.module) return { target: 'vmlinux' };
  const name = (recipe.modname ?? '').replace(/-/g, '_');
  const modulePath = modules.get(name);
  if (!modulePath) refuse(unitNotBuilt.moduleNotShipped(recipe.source, name));
  return { target: name, modulePath };
}

function unitFor(
  tree: string,
  source: string,
  modules: Map<string, string>,
  toolchain?: Toolchain,
): Omit<Unit, 'viaHeaders'> {
  const object = source.replace(/\.c$/, '.o');
  const recipe = kbuildRecipe(tree, object, toolchain);
  return { source, object, recipe, ...unitTarget(recipe, modules) };
}

/** `.c` files in the same directory that include `file` by its quoted name. */
export function sameDirIncluders(tree: string, file: string): string[] {
  const dir = dirname(file);
  const name = basename(file);
  const quoted = new RegExp(`^\\s*#\\s*include\\s*"${name.replace(/[.+]/g, '\\$&')}"`, 'm');
  const abs = join(tree, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs)
    .filter(
      (f) => f.endsWith('.c') && join(dir, f) !== file && quoted.test(readFileSync(join(abs, f), 'utf8')),
    )
    .map((f) => join(dir, f));
}

/** `.c` files that include `header` — see the file comment for where they are looked for. */
export function headerCandidates(tree: string, header: string): string[] {
  const out = new Set<string>(sameDirIncluders(tree, header));
  const inc = /(?:^|\/)include\/(.+)$/.exec(header);
  if (inc) {
    const r = spawnSync(
      'grep',
      ['-rlE', '--include=*.c', `^\\s*#\\s*include\\s*<${inc[1]!.replace(/[.+]/g, '\\$&')}>`, '.'],
      { cwd: tree, encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    for (const l of (r.stdout ?? '').split('\n')) {
      const p = l.trim().replace(/^\.\//, '');
      if (p && !OUTSIDE_IMAGE.test(p)) out.add(p);
    }
  }
  return [...out].sort();
}

/**
 * Map the applied diff to the units to compile. Refuses (check/source/) what cannot be a unit. kbuild is
 * asked for recipes through `toolchain` (the kernel's own compiler) when given.
 */
export function planUnits(applied: AppliedFile[], target: KernelTarget, toolchain?: Toolchain): UnitPlan {
  const tree = target.sourceTree;
  const modules = readModuleOrder(target.modulesDir);
  const units = new Map<string, Unit>();
  const headers: HeaderFollow[] = [];
  const ignored: UnitPlan['ignored'] = [];
  // files the diff adds, with the changed files that include them (units, or headers followed below)
  const added: HeaderFollow[] = [];
  const unsupported = (f: AppliedFile, change: UnsupportedChange): never =>
    refuse(unitUnsupported.diagnose(f.path, change));

  for (const f of applied) {
    if (OUTSIDE_IMAGE.test(f.path)) {
      ignored.push({ path: f.path, why: 'not part of the kernel image' });
      continue;
    }
    if (f.kind === 'add' && /\.[ch]$/.test(f.path)) {
      const includers = patchedIncluders(applied, f.path);
      if (includers.length === 0 && f.path.endsWith('.c')) refuse(unitNewFile.diagnose(f.path));
      if (includers.length === 0)
        ignored.push({ path: f.path, why: 'new file that no changed file includes' });
      else added.push({ header: f.path, candidates: includers });
      continue;
    }
    if (f.kind === 'delete' && /\.[ch]$/.test(f.path)) {
      const users = stillIncluded(applied, f.path, tree, modules, toolchain);
      if (users.length || (f.path.endsWith('.c') && isBuilt(tree, f.path, modules, toolchain))) {
        refuse(unitUnsupported.diagnose(f.path, 'delete', users));
      }
      ignored.push({ path: f.path, why: 'deleted; nothing built includes it' });
      continue;
    }
    if (f.kind === 'delete') unsupported(f, 'other');
    if (f.path.endsWith('.c') && sameDirIncluders(tree, f.path).length) {
      // a .c file #included by another one (kernel/sched/build_policy.c includes deadline.c): not a
      // unit of its own, followed to its includers like a header
      headers.push({ header: f.path, candidates: [] });
    } else if (f.path.endsWith('.c')) {
      const u = unitFor(tree, f.path, modules, toolchain);
      units.set(f.path, { ...u, patchedSource: f.patched, viaHeaders: [] });
    } else if (f.path.endsWith('.h')) {
      headers.push({ header: f.path, candidates: [] });
    } else if (/\.(S|s)$/.test(f.path)) {
      unsupported(f, 'assembly');
    } else {
      unsupported(f, 'other');
    }
  }
  for (const h of headers) {
    const cands = new Set(headerCandidates(tree, h.header));
    if (cands.size > MAX_HEADER_UNITS) refuse(unitHeaderWide.diagnose(h.header, [...cands]));
    h.candidates = [...cands];
    for (const c of cands) {
      const existing = units.get(c);
      if (existing) {
        existing.viaHeaders.push(h.header);
        continue;
      }
      try {
        units.set(c, { ...unitFor(tree, c, modules, toolchain), viaHeaders: [h.header] });
      } catch (e) {
        // a candidate this kernel does not build (module not shipped, no kbuild rule) is not a unit
        if (!(isSutureError(e) && (e.code === unitNotBuilt.id || e.code === 'KBUILD-NO-RECIPE'))) throw e;
      }
    }
  }
  for (const a of added) {
    for (const c of a.candidates) units.get(c)?.viaHeaders.push(a.header);
    headers.push(a);
  }
  if (units.size === 0) {
    refuse(
      unitNone.diagnose([
        ...ignored.map((i) => `${i.path}: ${i.why}`),
        ...headers.map((h) => `${h.header}: no unit includes it`),
      ]),
    );
  }
  return { units: [...units.values()], headers, ignored };
}

/** Whether `text` #includes `file` (tree-relative) from `from` (tree-relative): quoted, or `<path>`. */
function includes(text: string, from: string, file: string): boolean {
  const esc = (t: string) => t.replace(/[.+]/g, '\\$&');
  const inc = /(?:^|\/)include\/(.+)$/.exec(file);
  const quoted = dirname(from) === dirname(file) ? `"${esc(basename(file))}"` : undefined;
  const angle = inc ? `<${esc(inc[1]!)}>` : undefined;
  const forms = [quoted, angle].filter((x) => x !== undefined);
  return forms.length > 0 && new RegExp(`^\\s*#\\s*include\\s*(${forms.join('|')})`, 'm').test(text);
}

/** Changed or added files of the diff (patched copies) that #include `file`. */
function patchedIncluders(applied: AppliedFile[], file: string): string[] {
  return applied
    .filter((g) => g.path !== file && g.patched && /\.[ch]$/.test(g.path))
    .filter((g) => includes(readFileSync(g.patched!, 'utf8'), g.path, file))
    .map((g) => g.path)
    .sort();
}

/** Whether kbuild builds `source` into this image (it has a recipe and its module is shipped). */
function isBuilt(tree: string, source: string, modules: Map<string, string>, toolchain?: Toolchain): boolean {
  try {
    unitFor(tree, source, modules, toolchain);
    return true;
  } catch (e) {
    if (isSutureError(e) && (e.code === unitNotBuilt.id || e.code === 'KBUILD-NO-RECIPE')) return false;
    throw e;
  }
}

/** Up to three built files that still #include the deleted `file` after the patch (patched copy if changed). */
function stillIncluded(
  applied: AppliedFile[],
  file: string,
  tree: string,
  modules: Map<string, string>,
  toolchain?: Toolchain,
): string[] {
  const byPath = new Map(applied.map((f) => [f.path, f]));
  const users: string[] = [];
  // a few are enough to name (each one asks kbuild whether it is built)
  for (const c of headerCandidates(tree, file)) {
    const f = byPath.get(c);
    if (f?.kind === 'delete') continue;
    const text = readFileSync(f?.patched ?? join(tree, c), 'utf8');
    if (includes(text, c, file) && isBuilt(tree, c, modules, toolchain)) users.push(c);
    if (users.length === 3) break;
  }
  return users;
}

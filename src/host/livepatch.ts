/*
 * The kernel's livepatch tree in sysfs, read into values.
 *
 * /sys/kernel/livepatch/<patch>/ exists for every patch the kernel currently knows (its name is the
 * module's name). In 6.1 a patch directory has `enabled` (rw), `transition` (ro) and `force` (wo);
 * each object (`vmlinux` or a module name) is a subdirectory with `patched`, and each function a
 * subdirectory named `<function>,<sympos>`. Later kernels add `replace`, `signal`, `stack_order`:
 * which attributes exist is detected, never assumed.
 *
 * In 6.1 a patch leaves this tree once it is disabled or replaced by a cumulative patch (the kernel
 * frees it), while its module stays loaded until rmmod: such modules are found through
 * /sys/module/<name>/taint carrying K, and are reported as `inactive` (replaced or disabled; the
 * journal tells which when Suture made the change).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';
import { readStackOrder } from './attributes.js';
import type { HostRoots } from './roots.js';

export interface KlpFunc {
  name: string;
  sympos: number;
}

export interface KlpObject {
  /** `vmlinux` or a module name */
  name: string;
  /** whether the object is patched now (false for a module object whose module is not loaded) */
  patched: boolean | undefined;
  funcs: KlpFunc[];
}

/**
 * - `active`: enabled, transition complete
 * - `patching` / `unpatching`: a transition is in progress (towards enabled / disabled)
 * - `disabled`: in sysfs with enabled=0 and no transition (older kernels keep disabled patches)
 * - `inactive`: module loaded and flagged as a livepatch, but no longer in the livepatch tree
 *   (6.1: disabled, or replaced by a cumulative patch)
 */
export type PatchState = 'active' | 'patching' | 'unpatching' | 'disabled' | 'inactive';

export interface Livepatch {
  name: string;
  state: PatchState;
  enabled: boolean;
  transition: boolean;
  /** the kernel's `replace` attribute when it has one (newer kernels); undefined on 6.1 */
  replace: boolean | undefined;
  /** the kernel's `stack_order` attribute when it has one (6.13+); undefined otherwise */
  stackOrder: number | undefined;
  /** attribute files present in the patch directory, e.g. ['enabled','force','transition'] */
  attributes: string[];
  objects: KlpObject[];
  /** /sys/module/<name>/refcnt, when the module is loaded */
  refcnt: number | undefined;
}

const readTrim = (p: string) => readFileSync(p, 'utf8').trim();

export function livepatchRoot(roots: HostRoots): string {
  return join(roots.sys, 'kernel/livepatch');
}

/** Throw HOST-NO-LIVEPATCH when the kernel was built without CONFIG_LIVEPATCH. */
export function requireLivepatchSupport(roots: HostRoots): void {
  const dir = livepatchRoot(roots);
  if (!existsSync(dir)) {
    throw new SutureError({
      code: 'HOST-NO-LIVEPATCH',
      message: `${dir} does not exist: this kernel has no livepatch support`,
      location: { file: dir },
      why: 'the running kernel was built without CONFIG_LIVEPATCH (or sysfs is not mounted), so no livepatch can be loaded',
      hint: 'boot a kernel with CONFIG_LIVEPATCH=y (Debian 12 kernels have it) and mount sysfs at /sys',
    });
  }
}

export function requireRoot(roots: HostRoots, action: string): void {
  if (roots.uid !== 0) {
    throw new SutureError({
      code: 'HOST-NOT-ROOT',
      message: `${action} needs root (running as uid ${roots.uid})`,
      why: "loading modules, writing /sys/kernel/livepatch and reading tasks' kernel stacks need CAP_SYS_ADMIN/CAP_SYS_MODULE",
      hint: 'run it again with sudo',
    });
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function readObject(dir: string, name: string): KlpObject {
  const patchedFile = join(dir, 'patched');
  const patched = existsSync(patchedFile) ? readTrim(patchedFile) === '1' : undefined;
  const funcs: KlpFunc[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const m = /^(.+),(\d+)$/.exec(entry);
    if (m && isDir(join(dir, entry))) funcs.push({ name: m[1] as string, sympos: Number(m[2]) });
  }
  return { name, patched, funcs };
}

function refcnt(roots: HostRoots, module: string): number | undefined {
  try {
    return Number.parseInt(readTrim(join(roots.sys, 'module', module, 'refcnt')), 10);
  } catch {
    return undefined;
  }
}

/** Read one patch directory, or undefined if the kernel does not know that patch (any more). */
export function readLivepatch(roots: HostRoots, name: string): Livepatch | undefined {
  const dir = join(livepatchRoot(roots), name);
  if (!isDir(dir)) return undefined;
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return undefined; // freed between the two calls
  }
  const attributes: string[] = [];
  const objects: KlpObject[] = [];
  try {
    for (const e of entries) {
      if (isDir(join(dir, e))) objects.push(readObject(join(dir, e), e));
      else attributes.push(e);
    }
  } catch (err) {
    // the kernel frees the patch's objects at the end of an unpatching transition, under our feet: a
    // file gone (ENOENT), or one opened just before its kobject was removed (ENODEV on read)
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV') return undefined;
    throw err;
  }
  const flag = (attr: string) => {
    try {
      return readTrim(join(dir, attr)) === '1';
    } catch {
      return undefined;
    }
  };
  const enabled = flag('enabled') ?? false;
  const transition = flag('transition') ?? false;
  const state: PatchState = transition
    ? enabled
      ? 'patching'
      : 'unpatching'
    : enabled
      ? 'active'
      : 'disabled';
  return {
    name,
    state,
    enabled,
    transition,
    replace: attributes.includes('replace') ? flag('replace') : undefined,
    stackOrder: readStackOrder(dir, attributes),
    attributes,
    objects,
    refcnt: refcnt(roots, name),
  };
}

/** Loaded modules whose taint includes K (livepatch) but that are not in the livepatch tree. */
function inactiveLivepatchModules(roots: HostRoots, known: Set<string>): Livepatch[] {
  const modDir = join(roots.sys, 'module');
  let names: string[] = [];
  try {
    names = readdirSync(modDir).sort();
  } catch {
    return [];
  }
  const out: Livepatch[] = [];
  for (const m of names) {
    if (known.has(m)) continue;
    // built-in modules (most of /sys/module) have no taint file: an existence check is one cheap
    // syscall, a failed read an exception with a stack, which costs under TCG
    const taintFile = join(modDir, m, 'taint');
    if (!existsSync(taintFile)) continue;
    let taint = '';
    try {
      taint = readTrim(taintFile);
    } catch {
      continue; // unloaded meanwhile
    }
    if (!taint.includes('K')) continue;
    out.push({
      name: m,
      state: 'inactive',
      enabled: false,
      transition: false,
      replace: undefined,
      stackOrder: undefined,
      attributes: [],
      objects: [],
      refcnt: refcnt(roots, m),
    });
  }
  return out;
}

/** Every livepatch the kernel knows, plus loaded livepatch modules it no longer uses. */
export function readLivepatches(roots: HostRoots): Livepatch[] {
  requireLivepatchSupport(roots);
  const root = livepatchRoot(roots);
  const patches: Livepatch[] = [];
  for (const name of readdirSync(root).sort()) {
    const p = readLivepatch(roots, name);
    if (p) patches.push(p);
  }
  return patches.concat(inactiveLivepatchModules(roots, new Set(patches.map((p) => p.name))));
}

/** The patch currently in transition, if any (the kernel allows one at a time). */
export function patchInTransition(roots: HostRoots): Livepatch | undefined {
  return readLivepatches(roots).find((p) => p.transition);
}

export function isModuleLoaded(roots: HostRoots, module: string): boolean {
  return isDir(join(roots.sys, 'module', module)) && existsSync(join(roots.sys, 'module', module, 'refcnt'));
}

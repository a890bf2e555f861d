/*
 * Kernel modules for the VM: which `.ko` files a test needs, in the order they must be loaded.
 *
 * `modules.dep` (written by depmod) has one line per module: `kernel/path/a.ko: kernel/path/b.ko ...`,
 * listing every module `a` needs, directly or not. A module is named by its file name without `.ko`
 * (and compression suffix), with `-` and `_` interchangeable, as modprobe does. Debian's image package
 * ships no modules.dep (the postinst runs depmod), so when the target's modules directory lacks one we
 * run `depmod -n` against it once and keep the output in the VM cache.
 *
 * A driver one kernel builds as a module another builds in (virtio_pci and virtio_console are `=y` on
 * 6.12 cloud kernels, `=m` on 6.1) is listed in the target's `modules.builtin`: such a name needs no
 * file and is left out of the load order. Modules may be compressed (`.ko.xz` on both 6.12 lines).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fail } from '../diagnostic.js';
import type { KernelTarget } from '../kernel/target.js';
import { vmCacheDir } from './cache.js';

/** module path (relative to the modules directory) → the paths it depends on */
export type ModuleDeps = Map<string, string[]>;

export function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.(xz|gz|zst))?$/, '')
    .replace(/-/g, '_');
}

export function parseModulesDep(text: string, source = 'modules.dep'): ModuleDeps {
  const deps: ModuleDeps = new Map();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const colon = line.indexOf(':');
    if (colon <= 0)
      fail('VM-MODULES-DEP', `malformed line in ${source}`, { location: { file: source, line: i + 1 } });
    const mod = line.slice(0, colon).trim();
    const needs = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    deps.set(mod, needs);
  });
  return deps;
}

/**
 * Resolve module names to the paths to load, dependencies first, each once. Unknown names fail with
 * the closest candidates.
 */
export function resolveModules(
  deps: ModuleDeps,
  names: readonly string[],
  builtin: ReadonlySet<string> = new Set(),
): string[] {
  const byName = new Map<string, string>();
  for (const p of deps.keys()) byName.set(moduleName(p), p);
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (path: string, chain: string[]) => {
    if (seen.has(path)) return;
    if (chain.includes(path)) fail('VM-MODULES-CYCLE', `dependency cycle: ${[...chain, path].join(' → ')}`);
    const needs = deps.get(path);
    if (!needs) fail('VM-MODULES-DEP', `modules.dep names ${path} as a dependency but has no line for it`);
    // modules.dep lists the full closure, deepest last; visiting each keeps the order right either way
    for (const n of [...needs].reverse()) visit(n, [...chain, path]);
    seen.add(path);
    order.push(path);
  };
  for (const raw of names) {
    const want = moduleName(raw);
    const path = byName.get(want);
    if (!path && builtin.has(want)) continue; // built into this kernel: nothing to load
    if (!path) {
      const close = [...byName.keys()].filter((n) => n.includes(want) || want.includes(n)).slice(0, 8);
      fail('VM-MODULE-UNKNOWN', `no module named ${raw} in the target's modules`, {
        ...(close.length ? { detail: [`similar: ${close.join(', ')}`] } : {}),
        hint: 'use the module name as in lsmod (file name without .ko); built-in drivers need no module',
      });
    }
    visit(path, []);
  }
  return order;
}

/** Names of the drivers built into the target (its `modules.builtin`; empty when it has none). */
export function builtinModules(kernel: KernelTarget): Set<string> {
  const file = join(kernel.modulesDir, 'modules.builtin');
  if (!existsSync(file)) return new Set();
  return parseModulesBuiltin(readFileSync(file, 'utf8'));
}

/** `kernel/drivers/virtio/virtio_pci.ko` lines → module names. */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map(moduleName),
  );
}

/** The target's module dependencies: its modules.dep, or `depmod -n` output cached per target. */
export async function targetModuleDeps(kernel: KernelTarget): Promise<ModuleDeps> {
  const own = join(kernel.modulesDir, 'modules.dep');
  if (existsSync(own)) return parseModulesDep(await readFile(own, 'utf8'), own);
  const key = createHash('sha256')
    .update(`${kernel.release}\0${kernel.buildId}\0${resolve(kernel.modulesDir)}`)
    .digest('hex')
    .slice(0, 32);
  const cached = join(vmCacheDir(), 'modules-dep', `${key}.dep`);
  if (existsSync(cached)) return parseModulesDep(readFileSync(cached, 'utf8'), cached);
  // depmod wants <base>/lib/modules/<release>; the target's modulesDir is laid out that way
  const modulesDir = resolve(kernel.modulesDir);
  if (basename(modulesDir) !== kernel.release || basename(dirname(modulesDir)) !== 'modules') {
    fail('VM-MODULES-LAYOUT', `cannot run depmod on ${modulesDir}`, {
      why: 'the directory has no modules.dep and is not laid out as <base>/lib/modules/<release>',
    });
  }
  const base = dirname(dirname(dirname(modulesDir)));
  const r = spawnSync('depmod', ['-n', '-b', base, kernel.release], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.error || r.status !== 0) {
    fail('VM-DEPMOD', `depmod failed for ${kernel.release}`, {
      detail: (r.stderr || String(r.error ?? '')).split('\n').slice(0, 10),
      hint: 'install kmod (apt-get install kmod)',
    });
  }
  // depmod -n prints modules.dep first, then the other indexes, each after a "# ..." comment line
  const out = r.stdout;
  const next = out.search(/^#/m);
  const text = next >= 0 ? out.slice(0, next) : out;
  const deps = parseModulesDep(text, 'depmod -n');
  if (deps.size === 0) fail('VM-DEPMOD', `depmod found no modules under ${modulesDir}`);
  await mkdir(dirname(cached), { recursive: true });
  const tmp = `${cached}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, cached);
  return deps;
}

/** modules.dep text for a subset of modules (the ones placed in the VM), so the guest's modprobe works. */
export function renderModulesDep(deps: ModuleDeps, paths: readonly string[]): string {
  return `${paths.map((p) => `${p}: ${(deps.get(p) ?? []).join(' ')}`.trimEnd()).join('\n')}\n`;
}

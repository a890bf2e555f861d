/*
 * The shipped binaries' symbol tables of one build: the debug vmlinux and the debug `.ko` of each module
 * a unit belongs to, each indexed once per build and passed down to every stage that asks (verify,
 * sympos, the names of the module's references).
 */
import { type Dirent, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';
import { indexSymbols, type SymbolIndex } from '../elf/symbol-index.js';
import type { KernelTarget } from '../kernel/target.js';

/** What locates a unit's binary: its source (for messages), its target, and a module's path if known. */
export interface UnitBinary {
  source: string;
  /** `vmlinux` or the module name */
  target: string;
  /** path of the target module's debug .ko relative to the target's debugModulesDir */
  modulePath?: string;
}

/** The debug .ko of a module: `<dir>/kernel/.../<name>.ko`, module names compare with - and _ as one. */
export function findModuleFile(dir: string, name: string): string | undefined {
  const want = name.replace(/-/g, '_');
  const walk = (d: string): string | undefined => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return undefined;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const found = walk(p);
        if (found) return found;
      } else if (
        /\.ko(\.xz|\.zst|\.gz)?$/.test(e.name) &&
        e.name.replace(/\.ko.*$/, '').replace(/-/g, '_') === want
      )
        return p;
    }
    return undefined;
  };
  return walk(dir);
}

export class ShippedSymbols {
  private readonly indexes = new Map<string, Promise<SymbolIndex>>();
  private readonly modulePaths = new Map<string, string | undefined>();

  constructor(readonly target: KernelTarget) {}

  /** The index of one binary, made on first use. */
  of(path: string): Promise<SymbolIndex> {
    let p = this.indexes.get(path);
    if (!p) {
      p = indexSymbols(path);
      this.indexes.set(path, p);
    }
    return p;
  }

  vmlinux(): Promise<SymbolIndex> {
    return this.of(this.target.vmlinux);
  }

  /** The binary a unit is linked into: vmlinux, or its module's debug .ko. */
  unit(u: UnitBinary): Promise<SymbolIndex> {
    if (u.target === 'vmlinux') return this.vmlinux();
    const path = u.modulePath ? join(this.target.debugModulesDir, u.modulePath) : this.moduleFile(u.target);
    if (!path)
      fail('KLP-MODULE-NOT-FOUND', `no debug module for \`${u.target}\` in ${this.target.debugModulesDir}`, {
        location: { file: u.source },
        why: 'the patched file is part of a module, and its symbols (and their sympos) come from the module’s debug build',
        hint: 'check that the target kernel’s -dbg package is in the cache (suture kernel fetch)',
      });
    return this.of(path);
  }

  /** Another module, whose exports the patched code uses. */
  module(name: string): Promise<SymbolIndex> {
    const path = this.moduleFile(name);
    if (!path)
      fail('KLP-MODULE-NOT-FOUND', `no debug module for \`${name}\` in ${this.target.debugModulesDir}`, {
        why: 'the patched code uses a symbol exported by that module',
        hint: 'check that the target kernel’s -dbg package is in the cache',
      });
    return this.of(path);
  }

  private moduleFile(name: string): string | undefined {
    if (!this.modulePaths.has(name))
      this.modulePaths.set(name, findModuleFile(this.target.debugModulesDir, name));
    return this.modulePaths.get(name);
  }
}

/*
 * The names a livepatch module gives what its diff objects leave to the running kernel.
 *
 * Every Reference of a diff (objdiff/select.ts) gets its `moduleName`: exported symbols keep their name
 * (the module loader binds them, with modversions), everything else is named
 * `.klp.sym.<object>.<name>,<sympos>` with the sympos the kernel will count (klp-relocations). Every
 * replaced function gets its `sympos` (klp_func.old_sympos) the same way.
 */
import { basename } from 'node:path';
import type { FunctionDiff, Reference } from '../check/facts.js';
import { fail } from '../diagnostic.js';
import { SHN, STB } from '../elf/constants.js';
import { shippedCloneName } from '../objdiff/clones.js';
import type { ObjectDiff } from '../objdiff/objdiff.js';
import { klpSymbolName } from './relocations.js';
import type { ShippedSymbols, UnitBinary } from './shipped-symbols.js';
import { fileGroup, fileSympos } from './sympos.js';

/** One unit as the module builder sees it: where it lives, and its object diff. */
export interface ReferencingUnit extends UnitBinary {
  diff: ObjectDiff;
  /** sympos of the locals of this file in the running kernel, when the verify stage already knows them */
  sympos?: Map<string, number>;
}

/** Module.symvers names the exporting module by its path without `.ko` (`fs/xfs/xfs`): compare basenames. */
function exporterName(target: string): string {
  return target.replace(/-/g, '_');
}

/** The klp object name of a target: `vmlinux`, or the module name with dashes as underscores. */
export function klpObjectName(target: string): string {
  return target === 'vmlinux' ? 'vmlinux' : target.replace(/-/g, '_');
}

/** How the module names references: the kernel's exports, the globals this patch carries, the indexes. */
export interface NamingContext {
  /** exported symbol → exporting module path (`vmlinux` for the kernel's own) */
  exports: Map<string, string>;
  /** global functions the diff objects define: references to them stay plain, bound by the linker */
  carriedGlobals: Map<string, string>;
  shipped: ShippedSymbols;
}

const definedGlobal = (s: { kallsyms: boolean; bind: number; shndx: number }) =>
  s.kallsyms && s.bind !== STB.LOCAL && s.shndx !== SHN.UNDEF;

async function inModule(ctx: NamingContext, module: string, name: string): Promise<number> {
  const idx = await ctx.shipped.module(module);
  const s = idx.byName(name).find(definedGlobal);
  if (!s)
    fail('KLP-SYMBOL-NOT-FOUND', `\`${name}\` is not among the symbols of module ${module}`, {
      hint: 'Module.symvers and the debug module disagree: re-fetch the target kernel',
    });
  return s.sympos;
}

async function local(ctx: NamingContext, unit: ReferencingUnit, name: string): Promise<number> {
  if (!unit.sympos) {
    const idx = await ctx.shipped.unit(unit);
    unit.sympos = fileSympos(idx, unit.source, fileGroup(idx, unit.source, unit.diff.original));
  }
  const known = unit.sympos.get(shippedLocalName(unit, name));
  if (known !== undefined) return known;
  return fail(
    'KLP-SYMBOL-NOT-FOUND',
    `\`${name}\` of ${unit.source} is not among the running kernel's symbols`,
    {
      location: { file: unit.source, symbol: name },
      why: `the patched code references it, but ${unit.target}'s symbol table has no such local in ${basename(unit.source)} (inlined or removed in the shipped build)`,
      hint: 'the compiled original differs from the shipped kernel: check that the build uses the target kernel’s exact config and compiler',
    },
  );
}

/** A local's name in the running kernel: its own, or a clone's shipped name with another number. */
function shippedLocalName(unit: ReferencingUnit, name: string): string {
  if (!unit.sympos || unit.sympos.has(name)) return name;
  return shippedCloneName(name, unit.sympos.keys()) ?? name;
}

async function global(
  ctx: NamingContext,
  unit: ReferencingUnit,
  name: string,
): Promise<{ object: string; sympos: number }> {
  if (unit.target !== 'vmlinux') {
    // the module's own globals first: another file of the same module defines them
    const s = (await ctx.shipped.unit(unit)).byName(name).find(definedGlobal);
    if (s) return { object: klpObjectName(unit.target), sympos: s.sympos };
  }
  const inVmlinux = (await ctx.shipped.vmlinux()).byName(name).find(definedGlobal);
  if (inVmlinux) return { object: 'vmlinux', sympos: inVmlinux.sympos };
  return fail(
    'KLP-SYMBOL-NOT-FOUND',
    `\`${name}\` is neither exported nor found in ${unit.target === 'vmlinux' ? 'vmlinux' : `vmlinux or ${unit.target}`}`,
    {
      location: { file: unit.source, symbol: name },
      why: 'the patched code references a symbol the running kernel does not have',
      hint: 'if it is new in the patch, add its definition to the patched file; otherwise check the target kernel',
    },
  );
}

/** The name the module gives one reference of a unit. */
async function moduleName(ctx: NamingContext, u: ReferencingUnit, ref: Reference): Promise<string> {
  const exporter = ctx.exports.get(ref.name);
  if (ref.local) {
    const sympos = await local(ctx, u, ref.name);
    return klpSymbolName({ object: klpObjectName(u.target), name: shippedLocalName(u, ref.name), sympos });
  }
  if (exporter === 'vmlinux' || (ctx.carriedGlobals.has(ref.name) && !ref.definedHere)) {
    // exported by vmlinux (or carried by this patch): an ordinary reference the loaders bind
    return ref.name;
  }
  if (exporter !== undefined && u.target !== 'vmlinux' && !ref.definedHere) {
    // exported by a module: the target module depends on it, so it is loaded whenever the target is;
    // a klp relocation (applied when the target loads) keeps the livepatch free of a hard dependency
    const object = exporterName(basename(exporter));
    const sympos =
      object === exporterName(u.target)
        ? (await global(ctx, u, ref.name)).sympos
        : await inModule(ctx, object, ref.name);
    return klpSymbolName({ object, name: ref.name, sympos });
  }
  if (exporter !== undefined && u.target === 'vmlinux') return ref.name;
  const g = await global(ctx, u, ref.name);
  return klpSymbolName({ object: g.object, name: ref.name, sympos: g.sympos });
}

/** Give every reference of a unit's diff its module name (on the reference itself). */
export async function nameReferences(ctx: NamingContext, u: ReferencingUnit): Promise<void> {
  for (const ref of u.diff.references.values()) ref.moduleName = await moduleName(ctx, u, ref);
}

/** The functions a unit replaces (changed, not cold parts), each with its sympos set on its record. */
export async function replacedFunctions(ctx: NamingContext, u: ReferencingUnit): Promise<FunctionDiff[]> {
  const out: FunctionDiff[] = [];
  for (const f of u.diff.functions) {
    if (f.change !== 'changed' || f.parent) continue;
    const oldName = f.originalName ?? f.name;
    const isLocal = (f.twin ?? f.symbol).bind === STB.LOCAL;
    f.sympos = isLocal ? await local(ctx, u, oldName) : (await global(ctx, u, oldName)).sympos;
    // a clone numbered otherwise in the shipped build is replaced under the shipped name (klp_func.old_name)
    if (isLocal && shippedLocalName(u, oldName) !== oldName) f.originalName = shippedLocalName(u, oldName);
    out.push(f);
  }
  return out;
}

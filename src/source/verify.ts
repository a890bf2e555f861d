/*
 * Verification: is the object we just compiled really the one the running kernel was built from?
 *
 * Everything downstream — which functions changed, their sympos, the klp relocations — assumes that
 * our ORIGINAL object has the same functions as the shipped binary. A different compiler, a different
 * flag, a different config option or a different source version shows up as functions that are
 * missing, extra, renamed by the optimiser (the blog's `format_corename.isra.0`) or of another size.
 * So before trusting anything, each function symbol of the original object is looked up in the
 * shipped binary — the debug vmlinux, or the module's debug .ko — among the local symbols of that
 * source file (they follow its STT_FILE symbol) or among the globals, and must have the same name and
 * the same size. Any difference stops the build with the list of differing symbols.
 *
 * Several files share a basename (`core.c` is everywhere): the shipped file group that matches best is
 * the one compared; it must match completely.
 */

import { join } from 'node:path';
import { refuse } from '../check/refusal.js';
import { notShipped } from '../check/source/not-shipped.js';
import { fail, SutureError } from '../diagnostic.js';
import { type ElfObject, type ElfSymbol, readElfFile, STB, STT, type SymbolIndex } from '../elf/index.js';
import type { Toolchain } from '../kernel/toolchain.js';
import { compileObject, withoutSectionFlags } from './compile.js';
import type { Unit } from './units.js';

export interface FunctionSymbol {
  name: string;
  size: number;
  local: boolean;
  /** STB_WEAK: may be overridden by a strong definition elsewhere in the shipped binary */
  weak?: boolean;
}

/** The shipped binary's functions, grouped the way its symbol table groups them. */
export interface ShippedSymbols {
  /** each STT_FILE group with that basename (e.g. `meminfo.c`): its local function symbols */
  fileGroups(basename: string): FunctionSymbol[][];
  /** a global (or weak) function by name */
  global(name: string): FunctionSymbol | undefined;
  /** `vmlinux` or the debug .ko's path, for messages */
  readonly where: string;
}

/** Function symbols defined in a relocatable object. */
export function objectFunctions(obj: ElfObject): FunctionSymbol[] {
  return obj.symbols
    .filter((s) => s.type === STT.FUNC && s.section !== null && s.name !== '')
    .map((s) => ({ name: s.name, size: s.size, local: s.bind === STB.LOCAL, weak: s.bind === STB.WEAK }));
}

/** Group a symbol table in file order by its STT_FILE symbols: what a linked vmlinux or .ko looks like. */
export function shippedFromSymbols(symbols: readonly ElfSymbol[], where: string): ShippedSymbols {
  const groups = new Map<string, FunctionSymbol[][]>();
  const globals = new Map<string, FunctionSymbol>();
  let current: FunctionSymbol[] | undefined;
  for (const s of symbols) {
    if (s.type === STT.FILE) {
      current = [];
      const list = groups.get(s.name) ?? [];
      list.push(current);
      groups.set(s.name, list);
      continue;
    }
    if (s.type !== STT.FUNC) continue;
    if (s.bind === STB.LOCAL) current?.push({ name: s.name, size: s.size, local: true });
    else if (!globals.has(s.name) || s.bind === STB.GLOBAL) {
      globals.set(s.name, { name: s.name, size: s.size, local: false, weak: s.bind === STB.WEAK });
    }
  }
  return {
    where,
    fileGroups: (b) => groups.get(b) ?? [],
    global: (n) => globals.get(n),
  };
}

/** The shipped side from the ELF engine's symbol index of the debug vmlinux or debug .ko. */
export function shippedFromIndex(index: SymbolIndex): ShippedSymbols {
  return {
    where: index.kind === 'vmlinux' ? 'the shipped vmlinux' : `the shipped module ${index.object}`,
    fileGroups: (b) =>
      index
        .localsInFile(b)
        .map((g) =>
          g.symbols
            .filter((s) => s.type === STT.FUNC)
            .map((s) => ({ name: s.name, size: s.size, local: true })),
        ),
    global: (n) => {
      const s = index.global(n);
      return s && s.type === STT.FUNC
        ? { name: s.name, size: s.size, local: false, weak: s.bind === STB.WEAK }
        : undefined;
    },
  };
}

export interface SymbolMismatch {
  name: string;
  /** size in our object (undefined: not in our object) */
  ours?: number;
  /** size in the shipped binary (undefined: not there) */
  shipped?: number;
}

/** Compare our object's functions with the best-matching shipped file group; [] when they agree. */
export function compareWithShipped(
  ours: readonly FunctionSymbol[],
  shipped: ShippedSymbols,
  sourceBasename: string,
): { diffs: SymbolMismatch[]; group: number | undefined } {
  const groups = shipped.fileGroups(sourceBasename);
  let best: SymbolMismatch[] | undefined;
  let bestGroup: number | undefined;
  const candidates = groups.length ? groups : [[]];
  for (const [gi, g] of candidates.entries()) {
    const byName = new Map<string, FunctionSymbol[]>();
    for (const f of g) byName.set(f.name, [...(byName.get(f.name) ?? []), f]);
    const diffs: SymbolMismatch[] = [];
    const seen = new Set<string>();
    for (const f of ours) {
      seen.add(f.name);
      if (f.local) {
        const same = byName.get(f.name);
        if (!same) diffs.push({ name: f.name, ours: f.size });
        else if (!same.some((s) => s.size === f.size))
          diffs.push({ name: f.name, ours: f.size, shipped: same[0]!.size });
      } else {
        const s = shipped.global(f.name);
        if (!s) diffs.push({ name: f.name, ours: f.size });
        else if (f.weak && !s.weak)
          continue; // our weak default is overridden by a strong definition
        else if (s.size !== f.size) diffs.push({ name: f.name, ours: f.size, shipped: s.size });
      }
    }
    // shipped locals of this file that our object does not have (e.g. `foo.isra.0` where we have `foo`)
    for (const f of g) if (!seen.has(f.name)) diffs.push({ name: f.name, shipped: f.size });
    if (!best || diffs.length < best.length) {
      best = diffs;
      bestGroup = groups.length ? gi : undefined;
    }
    if (diffs.length === 0) break;
  }
  return { diffs: best ?? [], group: bestGroup };
}

/**
 * Verify or throw VERIFY-MISMATCH with the differing symbols. Returns which of the shipped file groups
 * with this basename is ours (its position in `fileGroups`), for sympos.
 */
export function verifyAgainstShipped(
  ours: readonly FunctionSymbol[],
  shipped: ShippedSymbols,
  source: string,
): { group: number | undefined } {
  const base = source.split('/').at(-1)!;
  if (shipped.fileGroups(base).length === 0 && ours.some((f) => f.local)) {
    refuse(notShipped.diagnose(source, shipped.where, base));
  }
  const { diffs, group } = compareWithShipped(ours, shipped, base);
  if (diffs.length === 0) return { group };
  fail('VERIFY-MISMATCH', `the compiled \`${source}\` does not match ${shipped.where}`, {
    location: { file: source },
    detail: diffs.map((d) =>
      d.ours === undefined
        ? `${d.name}: only in the shipped binary (size ${d.shipped})`
        : d.shipped === undefined
          ? `${d.name}: only in our build (size ${d.ours})`
          : `${d.name}: size ${d.ours} here, ${d.shipped} shipped`,
    ),
    why: 'the original object was not built the way the running kernel was (compiler, flags, config or source differ), so any livepatch made from it could replace the wrong code',
    hint: 'build with the exact source, config and compiler of the target kernel (see `suture kernel` for the cached tree)',
  });
}

export interface VerifyUnitRequest {
  unit: Unit;
  /** the compiled original object, read once by the caller */
  original: ElfObject;
  /** the shipped binary the unit belongs to */
  index: SymbolIndex;
  tree: string;
  workDir: string;
  /** the kernel's toolchain the exact recompile runs with (default: the host) */
  toolchain?: Toolchain;
}

/**
 * The verify stage for one unit. `-ffunction-sections` alone can change sizes (a jump to another section
 * cannot be relaxed to a short one): when our object does not match, the exact kbuild command, without
 * our section flags, must then match exactly. Returns the matched file group, and a note when only the
 * exact build matched.
 */
export async function verifyUnit(
  req: VerifyUnitRequest,
): Promise<{ group: number | undefined; note?: string }> {
  const { unit } = req;
  const shipped = shippedFromIndex(req.index);
  try {
    return verifyAgainstShipped(objectFunctions(req.original), shipped, unit.source);
  } catch (e) {
    if (!(e instanceof SutureError) || e.code !== 'VERIFY-MISMATCH') throw e;
    const exact = await compileObject({
      tree: req.tree,
      recipe: { ...unit.recipe, cc: withoutSectionFlags(unit.recipe.cc) },
      outObject: join(req.workDir, 'exact', unit.object),
      ...(req.toolchain ? { toolchain: req.toolchain } : {}),
    });
    const { group } = verifyAgainstShipped(
      objectFunctions(await readElfFile(exact.object)),
      shipped,
      unit.source,
    );
    return {
      group,
      note: `${unit.object} matches when built exactly as kbuild does; with section flags only the layout differs (${(e.diagnostic.detail ?? []).join('; ')})`,
    };
  }
}

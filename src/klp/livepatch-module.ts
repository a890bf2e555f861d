/*
 * The livepatch module: from diff objects to a loadable `livepatch-NAME.ko`.
 *
 * A livepatch module is an ordinary kernel module that registers a klp_patch: per patched object
 * (vmlinux or a module) a klp_object, per replaced function a klp_func naming the old function (with
 * its sympos when the name is not unique) and pointing at the new copy. We generate that registration
 * as C (registration.ts), let kbuild link it with the diff objects (exact compiler, flags and modpost of
 * the target kernel), and then rewrite the linked module so that references to what the running kernel
 * does not export become klp relocations (relocations.ts), resolved by the livepatch core at load time.
 *
 * Before linking, every reference a diff object leaves to the running kernel gets its final name on the
 * diff model (references.ts), and the diff object is written from the model (objdiff/write.ts). The
 * module rules of check/module/ refuse what such a module cannot do.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { duplicateFunction } from '../check/module/duplicate-function.js';
import { moduleKey } from '../check/module/module-key.js';
import { moduleTracepointInert } from '../check/module/module-tracepoint-inert.js';
import { nothingToReplace } from '../check/module/nothing-to-replace.js';
import { reservedName } from '../check/module/reserved-name.js';
import { refuse } from '../check/refusal.js';
import type { Diagnostic } from '../diagnostic.js';
import { STB } from '../elf/constants.js';
import { readElf } from '../elf/reader.js';
import { writeElf } from '../elf/writer.js';
import { kernelToolchain } from '../kernel/kernel-toolchain.js';
import type { KernelTarget } from '../kernel/target.js';
import type { Toolchain } from '../kernel/toolchain.js';
import type { PatchedObject } from '../manifest/manifest.js';
import { diffObjectOf } from '../objdiff/write.js';
import { livepatchCallbacks } from './callbacks.js';
import { runKbuild } from './kbuild.js';
import { leaveTracepointsInert } from './module-keys.js';
import {
  klpObjectName,
  type NamingContext,
  nameReferences,
  type ReferencingUnit,
  replacedFunctions,
} from './references.js';
import { registrationSource } from './registration.js';
import type { ObjectCallbacks } from './registration-callbacks.js';
import { convertKlpRelocations, type KlpConversion } from './relocations.js';
import { ShippedSymbols } from './shipped-symbols.js';

export { klpObjectName } from './references.js';
export { registrationSource } from './registration.js';
export { findModuleFile } from './shipped-symbols.js';

export interface LivepatchUnit extends ReferencingUnit {
  /** object relative to the tree, e.g. `fs/proc/meminfo.o` */
  object: string;
  originalObject?: string;
  patchedObject?: string;
}

export interface LivepatchModuleRequest {
  name: string;
  replace: boolean;
  target: KernelTarget;
  units: LivepatchUnit[];
  outDir: string;
  /** scratch directory (default: a new temporary directory) */
  workDir?: string;
  /** print kbuild's output as it runs */
  verbose?: boolean;
  /** the build's symbol indexes of the shipped binaries (default: indexed here) */
  shipped?: ShippedSymbols;
  /** run every module rule, then stop before kbuild: nothing linked, nothing written to outDir (`ko` is '') */
  rulesOnly?: boolean;
  /** the kernel's toolchain kbuild links with (default: kernelToolchain(target.release)) */
  toolchain?: Toolchain;
  /** `--strict`: a module's tracepoint in patched code is refused (KLP-MODULE-KEY), not carried inert */
  strict?: boolean;
}

export interface LivepatchModule {
  ko: string;
  /** what the module replaces, per klp object, for the manifest */
  manifestObjects: PatchedObject[];
  /** the klp relocation sections and symbols written into the module */
  klp: KlpConversion;
  /** the generated registration source */
  source: string;
  /** warnings of the module rules (KLP-MODULE-TRACEPOINT-INERT) */
  warnings: Diagnostic[];
}

/** Exported symbols of the kernel and its modules (Module.symvers: crc, name, module, export type, namespace). */
export function readExports(symvers: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(symvers, 'utf8').split('\n')) {
    const f = line.split('\t');
    if (f.length >= 3 && f[1]) out.set(f[1], f[2]!);
  }
  return out;
}

/** Throw the first diagnostic of a module rule, if any, as a refusal. */
function refuseAny(diagnostics: Diagnostic[]): void {
  if (diagnostics.length) refuse(diagnostics[0]!);
}

/** Global functions and new global variables the diff objects define: references to them stay plain, bound by the linker. */
function carriedGlobals(units: LivepatchUnit[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of units)
    for (const f of [...u.diff.functions, ...u.diff.data]) {
      if (!f.included) continue;
      // new static helpers, static variables and .cold parts stay local to their diff object
      if (f.symbol.bind === STB.LOCAL && (f.change !== 'changed' || ('parent' in f && f.parent))) continue;
      const other = out.get(f.name);
      if (other && other !== u.source) refuse(duplicateFunction.diagnose(f.name, other, u.source));
      out.set(f.name, u.source);
    }
  return out;
}

interface KlpObjectEntry {
  object: string;
  functions: { oldName: string; newSymbol: string; sympos: number; file: string; change: 'changed' }[];
  callbacks?: ObjectCallbacks;
}

/**
 * Write one unit's diff object into the module directory, named for the module; returns its file name.
 * A module's tracepoints in it are left inert first (a warning each), unless `strict`.
 */
async function writePart(
  dir: string,
  i: number,
  u: LivepatchUnit,
  strict: boolean,
  warnings: Diagnostic[],
): Promise<string> {
  const obj = diffObjectOf(u.diff, { exportFunctions: true });
  const keys = leaveTracepointsInert(obj, u.diff.tables, strict);
  refuseAny(moduleKey.check(u.source, keys.remaining, strict));
  warnings.push(...moduleTracepointInert.check(u.source, keys.inert));
  const part = `part${i}-${basename(u.object).replace(/[^A-Za-z0-9_]/g, '_')}`;
  await writeFile(join(dir, `${part}.o`), writeElf(obj));
  // kbuild rebuilds an object only from a source it knows; a .cmd file keeps it from asking
  writeFileSync(join(dir, `.${part}.o.cmd`), `savedcmd_${dir}/${part}.o := true\n`);
  return `${part}.o`;
}

export async function buildLivepatchModule(req: LivepatchModuleRequest): Promise<LivepatchModule> {
  const work = req.workDir ?? (await mkdtemp(join(tmpdir(), 'suture-module-')));
  const dir = resolve(join(work, 'module'));
  mkdirSync(dir, { recursive: true });
  const ctx: NamingContext = {
    exports: readExports(req.target.moduleSymvers),
    carriedGlobals: carriedGlobals(req.units),
    shipped: req.shipped ?? new ShippedSymbols(req.target),
  };
  const parts: string[] = [];
  /** carried sections of module-target units that reference other modules' exports: their klp object */
  const sectionObject = new Map<string, string>();
  const objects = new Map<string, KlpObjectEntry>();
  const warnings: Diagnostic[] = [];
  for (const [i, u] of req.units.entries()) {
    if (u.target !== 'vmlinux')
      for (const sec of u.diff.selection.sections) sectionObject.set(sec.name, klpObjectName(u.target));
    await nameReferences(ctx, u);
    parts.push(await writePart(dir, i, u, req.strict === true, warnings));
    const klpObject = klpObjectName(u.target);
    const entry = objects.get(klpObject) ?? { object: klpObject, functions: [] };
    objects.set(klpObject, entry);
    for (const f of await replacedFunctions(ctx, u))
      entry.functions.push({
        oldName: f.originalName ?? f.name,
        newSymbol: f.name,
        sympos: f.sympos ?? 0,
        file: u.source,
        change: 'changed',
      });
  }
  for (const [object, callbacks] of livepatchCallbacks(req.units)) {
    const entry = objects.get(object) ?? { object, functions: [] };
    objects.set(object, { ...entry, callbacks });
  }
  const used = [...objects.values()].filter((o) => o.functions.length > 0 || o.callbacks);
  // the registration's own names must not capture a replaced function through its asm label
  refuseAny(reservedName.check(used.flatMap((o) => o.functions.map((f) => f.newSymbol))));
  refuseAny(nothingToReplace.check(used.length));
  const modName = `livepatch-${req.name}`;
  const source = registrationSource(req.name, req.replace, used);
  if (req.rulesOnly)
    return {
      ko: '',
      manifestObjects: manifestObjects(used),
      klp: { sections: [], symbols: [] },
      source,
      warnings,
    };
  writeFileSync(join(dir, 'klp.c'), source);
  writeFileSync(join(dir, 'Kbuild'), `obj-m := ${modName}.o\n${modName}-y := klp.o ${parts.join(' ')}\n`);

  const toolchain = req.toolchain ?? (await kernelToolchain(req.target.release));
  const log = await runKbuild(req.target.sourceTree, dir, req.verbose, toolchain);
  writeFileSync(join(dir, 'kbuild.log'), log);
  const built = join(dir, `${modName}.ko`);
  const ko = readElf(await readFile(built), built);
  const klp = convertKlpRelocations(ko, (section, sym) =>
    sym.object === 'vmlinux' ? 'vmlinux' : (sectionObject.get(section.name) ?? sym.object),
  );
  mkdirSync(req.outDir, { recursive: true });
  const out = join(req.outDir, `${modName}.ko`);
  await writeFile(out, writeElf(ko));
  return {
    ko: out,
    manifestObjects: manifestObjects(used),
    klp,
    source,
    warnings,
  };
}

function manifestObjects(used: KlpObjectEntry[]): PatchedObject[] {
  return used.map((o) => ({
    name: o.object,
    functions: o.functions.map((f) => ({
      name: f.oldName,
      sympos: f.sympos,
      file: f.file,
      change: f.change,
    })),
  }));
}

/*
 * The livepatch module: from diff objects to a loadable `livepatch-NAME.ko`.
 *
 * A livepatch module is an ordinary kernel module that registers a klp_patch: per patched object
 * (vmlinux or a module) a klp_object, per replaced function a klp_func naming the old function (with
 * its sympos when the name is not unique) and pointing at the new copy. We generate that registration
 * as C, let kbuild link it with the diff objects (exact compiler, flags and modpost of the target
 * kernel), and then rewrite the linked module so that references to what the running kernel does not
 * export become klp relocations (klp-relocations.ts), resolved by the livepatch core at load time.
 *
 * Before linking, every reference a diff object leaves to the running kernel gets its final name:
 * exported symbols keep theirs (the module loader binds them, with modversions), everything else is
 * named `.klp.sym.<object>.<name>,<sympos>` with the sympos the kernel will count.
 */
import { spawn } from 'node:child_process';
import { type Dirent, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { duplicateFunction } from '../check/module/duplicate-function.js';
import { EARLY_TABLES, type EarlyTableReference, moduleKey } from '../check/module/module-key.js';
import { nothingToReplace } from '../check/module/nothing-to-replace.js';
import { reservedName } from '../check/module/reserved-name.js';
import { refuse } from '../check/refusal.js';
import { type Diagnostic, fail } from '../diagnostic.js';
import type { ElfObject } from '../elf/model.js';
import { readElf } from '../elf/reader.js';
import { indexSymbols, type SymbolIndex } from '../elf/symbol-index.js';
import { writeElf } from '../elf/writer.js';
import type { KernelTarget } from '../kernel/target.js';
import type { PatchedObject } from '../manifest/manifest.js';
import type { ObjectDiff } from '../objdiff/objdiff.js';
import type { ExternalRef } from '../objdiff/select.js';
import { diffObjectOf } from '../objdiff/write.js';
import {
  convertKlpRelocations,
  type KlpConversion,
  klpSymbolName,
  parseKlpSymbolName,
} from './relocations.js';

export interface LivepatchUnit {
  /** source file relative to the tree, e.g. `fs/proc/meminfo.c` */
  source: string;
  /** object relative to the tree, e.g. `fs/proc/meminfo.o` */
  object: string;
  /** `vmlinux` or the name of the module the object is linked into */
  target: string;
  originalObject?: string;
  patchedObject?: string;
  /** the comparison of original and patched object (diffObjects) */
  diff: ObjectDiff;
  /** sympos of the locals of this file in the running kernel, when the verify stage already knows them */
  sympos?: Map<string, number>;
  /** path of the target module's debug .ko relative to the target's debugModulesDir (module targets) */
  modulePath?: string;
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
  /** run every module rule, then stop before kbuild: nothing linked, nothing written to outDir (`ko` is '') */
  rulesOnly?: boolean;
}

export interface LivepatchModule {
  ko: string;
  /** what the module replaces, per klp object, for the manifest */
  manifestObjects: PatchedObject[];
  /** the klp relocation sections and symbols written into the module */
  klp: KlpConversion;
  /** the generated registration source */
  source: string;
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

const indexCache = new Map<string, Promise<SymbolIndex>>();
function indexOf(path: string): Promise<SymbolIndex> {
  let p = indexCache.get(path);
  if (!p) {
    p = indexSymbols(path);
    indexCache.set(path, p);
  }
  return p;
}

/** Module.symvers names the exporting module by its path without `.ko` (`fs/xfs/xfs`): compare basenames. */
function exporterName(target: string): string {
  return target.replace(/-/g, '_');
}

/** The klp object name of a target: `vmlinux`, or the module name with dashes as underscores. */
export function klpObjectName(target: string): string {
  return target === 'vmlinux' ? 'vmlinux' : target.replace(/-/g, '_');
}

interface Resolver {
  /** sympos of a global of another module (by module name) */
  inModule(module: string, name: string): Promise<number>;
  /** sympos of a local of this unit's file in its target object */
  local(unit: LivepatchUnit, name: string): Promise<number>;
  /** object and sympos of a non-exported global */
  global(unit: LivepatchUnit, name: string): Promise<{ object: string; sympos: number }>;
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

function makeResolver(target: KernelTarget): Resolver {
  const modulePaths = new Map<string, string>();
  const unitIndex = (unit: LivepatchUnit) => {
    if (unit.target === 'vmlinux') return indexOf(target.vmlinux);
    let path = unit.modulePath ? join(target.debugModulesDir, unit.modulePath) : modulePaths.get(unit.target);
    path ??= findModuleFile(target.debugModulesDir, unit.target);
    if (!path)
      fail('KLP-MODULE-NOT-FOUND', `no debug module for \`${unit.target}\` in ${target.debugModulesDir}`, {
        location: { file: unit.source },
        why: 'the patched file is part of a module, and its symbols (and their sympos) come from the module’s debug build',
        hint: 'check that the target kernel’s -dbg package is in the cache (suture kernel fetch)',
      });
    modulePaths.set(unit.target, path);
    return indexOf(path);
  };
  return {
    async inModule(module, name) {
      const path = findModuleFile(target.debugModulesDir, module);
      if (!path)
        fail('KLP-MODULE-NOT-FOUND', `no debug module for \`${module}\` in ${target.debugModulesDir}`, {
          why: 'the patched code uses a symbol exported by that module',
          hint: 'check that the target kernel’s -dbg package is in the cache',
        });
      const idx = await indexOf(path);
      const s = idx.byName(name).find((x) => x.kallsyms && x.bind !== 0 && x.shndx !== 0);
      if (!s)
        fail('KLP-SYMBOL-NOT-FOUND', `\`${name}\` is not among the symbols of module ${module}`, {
          hint: 'Module.symvers and the debug module disagree: re-fetch the target kernel',
        });
      return s.sympos;
    },
    async local(unit, name) {
      const known = unit.sympos?.get(name);
      if (known !== undefined) return known;
      const idx = await unitIndex(unit);
      const file = basename(unit.source);
      const groups = idx.localsInFile(file);
      // the group of this translation unit: the one holding the most of the original object's locals
      const ours = new Set(
        unit.diff.facts.original.symbols.filter((s) => s.bind === 0 && s.name).map((s) => s.name),
      );
      let best = groups[0];
      let score = -1;
      for (const g of groups) {
        const n = g.symbols.filter((s) => ours.has(s.name)).length;
        if (n > score) {
          best = g;
          score = n;
        }
      }
      const sym = best?.symbols.find((s) => s.name === name && s.kallsyms);
      if (!sym)
        fail(
          'KLP-SYMBOL-NOT-FOUND',
          `\`${name}\` of ${unit.source} is not among the running kernel's symbols`,
          {
            location: { file: unit.source, symbol: name },
            why: `the patched code references it, but ${unit.target}'s symbol table has no such local in ${file} (inlined or removed in the shipped build)`,
            hint: 'the compiled original differs from the shipped kernel: check that the build uses the target kernel’s exact config and compiler',
          },
        );
      return sym.sympos;
    },
    async global(unit, name) {
      if (unit.target !== 'vmlinux') {
        // the module's own globals first: another file of the same module defines them
        const mod = await unitIndex(unit);
        const s = mod.byName(name).find((x) => x.kallsyms && x.bind !== 0 && x.shndx !== 0);
        if (s) return { object: klpObjectName(unit.target), sympos: s.sympos };
      }
      const vm = await indexOf(target.vmlinux);
      const inVmlinux = vm.byName(name).find((s) => s.kallsyms && s.bind !== 0 && s.shndx !== 0);
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
    },
  };
}

function cString(s: string): string {
  return JSON.stringify(s);
}

/** The C source registering the patch: klp_func per replaced function, klp_object per target, klp_patch. */
export function registrationSource(
  name: string,
  replace: boolean,
  objects: { object: string; functions: { oldName: string; newSymbol: string; sympos: number }[] }[],
): string {
  const lines: string[] = [
    `/* livepatch ${name}: generated by suture, do not edit */`,
    '#include <linux/kernel.h>',
    '#include <linux/module.h>',
    '#include <linux/livepatch.h>',
    '',
  ];
  let n = 0;
  const funcsOf: string[] = [];
  for (const [i, o] of objects.entries()) {
    const decls: string[] = [];
    const entries: string[] = [];
    for (const f of o.functions) {
      const c = `suture_new_${n++}`;
      decls.push(`extern void ${c}(void) __asm__(${cString(f.newSymbol)});`);
      entries.push(`\t{ .old_name = ${cString(f.oldName)}, .new_func = ${c}, .old_sympos = ${f.sympos} },`);
    }
    lines.push(
      ...decls,
      '',
      `static struct klp_func suture_klp_funcs_${i}[] = {`,
      ...entries,
      '\t{ }',
      '};',
      '',
    );
    funcsOf.push(
      `\t{ .name = ${o.object === 'vmlinux' ? 'NULL' : cString(o.object)}, .funcs = suture_klp_funcs_${i} },`,
    );
  }
  lines.push(
    'static struct klp_object suture_klp_objs[] = {',
    ...funcsOf,
    '\t{ }',
    '};',
    '',
    'static struct klp_patch suture_klp_patch = {',
    '\t.mod = THIS_MODULE,',
    '\t.objs = suture_klp_objs,',
    `\t.replace = ${replace ? 'true' : 'false'},`,
    '};',
    '',
    'static int __init suture_livepatch_init(void)',
    '{',
    '\treturn klp_enable_patch(&suture_klp_patch);',
    '}',
    '',
    'static void __exit suture_livepatch_exit(void)',
    '{',
    '}',
    '',
    'module_init(suture_livepatch_init);',
    'module_exit(suture_livepatch_exit);',
    'MODULE_LICENSE("GPL");',
    'MODULE_INFO(livepatch, "Y");',
    `MODULE_DESCRIPTION(${cString(`suture livepatch ${name}`)});`,
    '',
  );
  return lines.join('\n');
}

/** Run kbuild for an external module directory; throws KBUILD-FAILED with the tail of its output. */
export async function runKbuild(tree: string, dir: string, verbose = false): Promise<string> {
  const args = ['-C', tree, `M=${dir}`, 'KBUILD_MODPOST_WARN=1', '-j2', 'modules'];
  return await new Promise<string>((resolvePromise, reject) => {
    const child = spawn('make', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b: Buffer) => {
      out += b.toString();
      if (verbose) process.stderr.write(b);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (e) => reject(e));
    child.on('close', (code) => {
      if (code === 0) return resolvePromise(out);
      reject(
        new Error(`make ${args.join(' ')} exited with ${code}\n${out.split('\n').slice(-30).join('\n')}`),
      );
    });
  }).catch((e: Error) =>
    fail('KBUILD-FAILED', `linking the livepatch module failed: ${e.message.split('\n')[0]}`, {
      location: { file: dir },
      detail: e.message.split('\n').slice(1),
      hint: 'the output of make is in the build directory; run with --keep to inspect it',
    }),
  );
}

/** References of the early tables (jump labels, static calls, alternatives) to klp symbols. */
function earlyTableReferences(obj: ElfObject): EarlyTableReference[] {
  const out: EarlyTableReference[] = [];
  for (const table of EARLY_TABLES) {
    const sec = obj.section(table);
    if (!sec) continue;
    for (const rela of obj.relocationsFor(sec)) {
      for (const r of rela.relocations ?? []) {
        const k = r.symbol ? parseKlpSymbolName(r.symbol.name) : undefined;
        if (k) out.push({ table, object: k.object, name: k.name });
      }
    }
  }
  return out;
}

/** Throw the first diagnostic of a module rule, if any, as a refusal. */
function refuseAny(diagnostics: Diagnostic[]): void {
  if (diagnostics.length) refuse(diagnostics[0]!);
}

export async function buildLivepatchModule(req: LivepatchModuleRequest): Promise<LivepatchModule> {
  const work = req.workDir ?? (await mkdtemp(join(tmpdir(), 'suture-module-')));
  const dir = resolve(join(work, 'module'));
  mkdirSync(dir, { recursive: true });
  const exports = readExports(req.target.moduleSymvers);
  const resolver = makeResolver(req.target);

  // functions the diff objects define globally: references to them stay plain, bound by the linker
  const carriedGlobals = new Map<string, string>();
  for (const u of req.units)
    for (const f of u.diff.selection.functions) {
      const v = u.diff.facts.functions.find((x) => x.symbol === f);
      // new static helpers and .cold parts stay local to their diff object
      if (f.bind === 0 && (v?.change !== 'changed' || v.parent)) continue;
      const other = carriedGlobals.get(f.name);
      if (other && other !== u.source) refuse(duplicateFunction.diagnose(f.name, other, u.source));
      carriedGlobals.set(f.name, u.source);
    }

  const parts: string[] = [];
  /** carried sections of module-target units that reference other modules' exports: their klp object */
  const sectionObject = new Map<string, string>();
  const objects = new Map<
    string,
    {
      object: string;
      functions: {
        oldName: string;
        newSymbol: string;
        sympos: number;
        file: string;
        change: 'changed' | 'new';
      }[];
    }
  >();
  for (const [i, u] of req.units.entries()) {
    const names = new Map<ExternalRef, string>();
    if (u.target !== 'vmlinux')
      for (const sec of u.diff.selection.sections) sectionObject.set(sec.name, klpObjectName(u.target));
    for (const ref of new Set(u.diff.selection.externals.values())) {
      if (ref.local) {
        const sympos = await resolver.local(u, ref.name);
        names.set(ref, klpSymbolName({ object: klpObjectName(u.target), name: ref.name, sympos }));
      } else if (exports.get(ref.name) === 'vmlinux' || (carriedGlobals.has(ref.name) && !ref.definedHere)) {
        // exported by vmlinux (or carried by this patch): an ordinary reference the loaders bind
        names.set(ref, ref.name);
      } else if (exports.has(ref.name) && u.target !== 'vmlinux' && !ref.definedHere) {
        // exported by a module: the target module depends on it, so it is loaded whenever the target is;
        // a klp relocation (applied when the target loads) keeps the livepatch free of a hard dependency
        const exporter = exporterName(basename(exports.get(ref.name)!));
        const sympos =
          exporter === exporterName(u.target)
            ? (await resolver.global(u, ref.name)).sympos
            : await resolver.inModule(exporter, ref.name);
        names.set(ref, klpSymbolName({ object: exporter, name: ref.name, sympos }));
      } else if (exports.has(ref.name) && u.target === 'vmlinux') {
        names.set(ref, ref.name);
      } else {
        const g = await resolver.global(u, ref.name);
        names.set(ref, klpSymbolName({ object: g.object, name: ref.name, sympos: g.sympos }));
      }
    }
    const obj = diffObjectOf(u.diff, {
      externalName: (ref) => names.get(ref) ?? ref.name,
      exportFunctions: true,
    });
    refuseAny(moduleKey.check(u.source, earlyTableReferences(obj)));
    const part = `part${i}-${basename(u.object).replace(/[^A-Za-z0-9_]/g, '_')}`;
    await writeFile(join(dir, `${part}.o`), writeElf(obj));
    // kbuild rebuilds an object only from a source it knows; a .cmd file keeps it from asking
    writeFileSync(join(dir, `.${part}.o.cmd`), `savedcmd_${dir}/${part}.o := true\n`);
    parts.push(`${part}.o`);

    const klpObject = klpObjectName(u.target);
    const entry = objects.get(klpObject) ?? { object: klpObject, functions: [] };
    objects.set(klpObject, entry);
    for (const f of u.diff.facts.functions) {
      if (f.change !== 'changed' || f.parent) continue;
      const oldName = f.originalName ?? f.name;
      const local = (f.original ?? f.symbol).bind === 0;
      const sympos = local ? await resolver.local(u, oldName) : (await resolver.global(u, oldName)).sympos;
      entry.functions.push({ oldName, newSymbol: f.name, sympos, file: u.source, change: 'changed' });
    }
  }
  const used = [...objects.values()].filter((o) => o.functions.length > 0);
  // the registration's own names must not capture a replaced function through its asm label
  refuseAny(reservedName.check(used.flatMap((o) => o.functions.map((f) => f.newSymbol))));
  refuseAny(nothingToReplace.check(used.length));
  const modName = `livepatch-${req.name}`;
  const source = registrationSource(req.name, req.replace, used);
  if (req.rulesOnly)
    return { ko: '', manifestObjects: manifestObjects(used), klp: { sections: [], symbols: [] }, source };
  writeFileSync(join(dir, 'klp.c'), source);
  writeFileSync(join(dir, 'Kbuild'), `obj-m := ${modName}.o\n${modName}-y := klp.o ${parts.join(' ')}\n`);

  const log = await runKbuild(req.target.sourceTree, dir, req.verbose);
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
  };
}

function manifestObjects(
  used: {
    object: string;
    functions: { oldName: string; sympos: number; file: string; change: 'changed' | 'new' }[];
  }[],
): PatchedObject[] {
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

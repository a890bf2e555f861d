/*
 * Symbol index of a linked kernel object (vmlinux) or a module (.ko): which symbol is which, and its
 * sympos — the position the kernel's livepatch core will count when it resolves a klp relocation.
 *
 * How the kernel counts (6.1, kernel/livepatch/core.c klp_find_object_symbol/klp_find_callback): it walks
 * the object's kallsyms and counts the symbols whose name matches. sympos 0 means "the name must be
 * unique in the object"; sympos N means "the N-th match in that walk". So the order of the walk decides:
 *
 *  - vmlinux: kallsyms_on_each_symbol walks the kallsyms table in its stored order. scripts/kallsyms.c
 *    builds that table from `nm -n` (filtered by scripts/mksysmap) and sorts it by address (ties: non-weak
 *    first, then fewer leading underscores, then nm order). With CONFIG_KALLSYMS_ALL=y (Debian) data
 *    symbols are in it too, not only text. Not in it: undefined, absolute, FILE and SECTION symbols, and
 *    names starting `$`, `.L`, `__crc_`, `__kstrtab_`, `__kstrtabns_`, plus kallsyms' own ignore list.
 *  - module: module_kallsyms_on_each_symbol walks the module's core symtab in ELF symtab order, keeping
 *    symbols that are defined, named, and in an allocated, non-init section (kernel/module/kallsyms.c
 *    is_core_symbol, KALLSYMS_ALL flavour).
 *
 * FILE symbols are basenames ("meminfo.c") and several translation units share one (e.g. many "core.c"),
 * so locals are grouped per FILE symbol in symtab order: `localsInFile("core.c")` returns every group.
 *
 * The symtab and strtab are read by offset (ElfFile); the rest of a 600 MB vmlinux is never read.
 */
import { elfFail } from './bounds.js';
import { SHN, SHT, STB, STT, SYM_SIZE } from './constants.js';
import { withElfFile } from './file.js';
import type { RawSectionHeader } from './reader.js';

export interface KernelSymbol {
  /** index in .symtab */
  index: number;
  name: string;
  value: bigint;
  size: number;
  type: number;
  bind: number;
  visibility: number;
  /** raw section index (after SHN_XINDEX resolution) */
  shndx: number;
  /** name of the section it is defined in, if any */
  section: string | undefined;
  /** the FILE group a local belongs to (undefined for globals and locals before any FILE symbol) */
  file: FileGroup | undefined;
  /** whether the kernel's kallsyms (and so the livepatch core) can see this symbol */
  kallsyms: boolean;
  /**
   * The position the livepatch core counts: 0 when the name is unique among the object's kallsyms,
   * otherwise 1-based in kallsyms order. Meaningful only when `kallsyms` is true.
   */
  sympos: number;
}

export interface FileGroup {
  /** the FILE symbol's name: a basename such as "meminfo.c" */
  basename: string;
  /** 0-based position among groups with the same basename, in symtab order */
  ordinal: number;
  /** symtab index of the FILE symbol */
  index: number;
  /** the locals that follow this FILE symbol */
  symbols: KernelSymbol[];
}

export class SymbolIndex {
  /** the klp object name: "vmlinux" or the module name (dashes turned to underscores) */
  readonly object: string;
  readonly kind: 'vmlinux' | 'module';
  readonly path: string;
  /** all symbols except the null symbol, in symtab order */
  readonly symbols: KernelSymbol[];
  /** FILE groups in symtab order */
  readonly files: FileGroup[];
  private readonly names: Map<string, KernelSymbol[]>;
  private readonly groups = new Map<string, FileGroup[]>();

  constructor(
    path: string,
    object: string,
    kind: 'vmlinux' | 'module',
    symbols: KernelSymbol[],
    files: FileGroup[],
    names: Map<string, KernelSymbol[]>,
  ) {
    this.path = path;
    this.object = object;
    this.kind = kind;
    this.symbols = symbols;
    this.files = files;
    this.names = names;
    for (const g of files) push(this.groups, g.basename, g);
  }

  /** Every symbol with that name: kallsyms-visible ones in sympos order, then the others. */
  byName(name: string): KernelSymbol[] {
    return this.names.get(name) ?? [];
  }

  /** The defined global (or weak) symbol with that name; a GLOBAL wins over a WEAK. */
  global(name: string): KernelSymbol | undefined {
    let weak: KernelSymbol | undefined;
    for (const s of this.byName(name)) {
      if (s.shndx === SHN.UNDEF) continue;
      if (s.bind === STB.GLOBAL) return s;
      if (s.bind === STB.WEAK || s.bind === STB.GNU_UNIQUE) weak ??= s;
    }
    return weak;
  }

  /** The FILE groups with that basename, in symtab order (several translation units can share one). */
  localsInFile(basename: string): FileGroup[] {
    return this.groups.get(basename) ?? [];
  }

  /** Locals named `name` in any group of `fileBasename`; more than one means the basename is ambiguous. */
  lookupLocal(fileBasename: string, name: string): KernelSymbol[] {
    const out: KernelSymbol[] = [];
    for (const g of this.localsInFile(fileBasename))
      for (const s of g.symbols) if (s.name === name) out.push(s);
    return out;
  }

  /** How many kallsyms-visible symbols carry this name (sympos is needed when > 1). */
  kallsymsCount(name: string): number {
    let n = 0;
    for (const s of this.byName(name)) if (s.kallsyms) n++;
    return n;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

const MKSYSMAP_PREFIXES = ['$', '.L', '__crc_', '__kstrtab_', '__kstrtabns_'];
const KALLSYMS_IGNORED = new Set([
  'kallsyms_addresses',
  'kallsyms_offsets',
  'kallsyms_relative_base',
  'kallsyms_num_syms',
  'kallsyms_names',
  'kallsyms_markers',
  'kallsyms_token_table',
  'kallsyms_token_index',
  'kallsyms_seqs_of_names',
  '_SDA_BASE_',
  '_SDA2_BASE_',
  'L0',
]);
const KALLSYMS_IGNORED_PREFIXES = [
  '__efistub_',
  '__kvm_nvhe_$',
  '__kvm_nvhe_.L',
  '__AArch64ADRPThunk_',
  '__ARMV5PILongThunk_',
  '__ARMV7PILongThunk_',
  '__ThumbV7PILongThunk_',
  '__LA25Thunk_',
  '__microLA25Thunk_',
  '__kcfi_typeid_',
];
const KALLSYMS_IGNORED_SUFFIXES = ['_from_arm', '_from_thumb', '_veneer'];

/** Would scripts/mksysmap + scripts/kallsyms keep this vmlinux symbol? (nm letters as nm derives them) */
function inVmlinuxKallsyms(s: KernelSymbol, sectionFlags: (shndx: number) => number | undefined): boolean {
  if (s.name === '' || s.type === STT.FILE || s.type === STT.SECTION) return false;
  if (s.shndx === SHN.UNDEF || s.shndx === SHN.ABS) return false; // U, w (weak undefined), a, A
  const flags = sectionFlags(s.shndx);
  if (flags !== undefined && (flags & 0x2) === 0) return false; // non-alloc: nm 'N'/'n' debugging
  const n = s.name;
  for (const p of MKSYSMAP_PREFIXES) if (n.startsWith(p)) return false;
  if (KALLSYMS_IGNORED.has(n)) return false;
  for (const p of KALLSYMS_IGNORED_PREFIXES) if (n.startsWith(p)) return false;
  for (const p of KALLSYMS_IGNORED_SUFFIXES) if (n.endsWith(p)) return false;
  if (n.includes('.long_branch.') || n.includes('.plt_branch.')) return false;
  return true;
}

/** kernel/module/kallsyms.c is_core_symbol (CONFIG_KALLSYMS_ALL=y), for a module's .ko. */
function inModuleKallsyms(s: KernelSymbol, headers: RawSectionHeader[]): boolean {
  if (s.shndx === SHN.UNDEF || s.shndx >= headers.length || s.name === '') return false;
  const h = headers[s.shndx]!;
  if (h.name === '.data..percpu') return true;
  if ((h.flags & 0x2) === 0) return false;
  if (h.name.startsWith('.init')) return false;
  return true;
}

function leadingUnderscores(s: string): number {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) === 95) i++;
  return i;
}

/** The klp object name of a module file: its .modinfo name=, else the file name with - → _. */
function moduleName(path: string, modinfo: Buffer | undefined): string {
  if (modinfo) {
    for (const entry of modinfo.toString('latin1').split('\0'))
      if (entry.startsWith('name=')) return entry.slice(5);
  }
  const base = path.split('/').pop() ?? path;
  return base.replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');
}

/** Index the symbols of a vmlinux (ET_EXEC) or a module (.ko, ET_REL). Reads only headers, .symtab and .strtab. */
export async function indexSymbols(path: string): Promise<SymbolIndex> {
  return withElfFile(path, async (f) => {
    const symtabH = f.sections.find((s) => s.type === SHT.SYMTAB);
    if (!symtabH)
      return elfFail(
        'ELF-NO-SYMTAB',
        `${path} has no symbol table`,
        { file: path, offset: f.header.shoff, field: 'SHT_SYMTAB' },
        'the file was stripped; sympos and file-local symbols need the full symbol table',
        'use the debug vmlinux (linux-image-*-dbg) or the unstripped module',
      );
    const fld = (d: number, name: string) => ({
      file: path,
      offset: symtabH.headerOffset + d,
      field: `section[${symtabH.index}].${name}`,
    });
    if (symtabH.entsize !== SYM_SIZE)
      elfFail(
        'ELF-BAD-ENTSIZE',
        `.symtab has sh_entsize ${symtabH.entsize}, expected 24`,
        fld(56, 'sh_entsize'),
      );
    if (symtabH.size % SYM_SIZE !== 0)
      elfFail('ELF-BAD-SIZE', `.symtab size ${symtabH.size} is not a multiple of 24`, fld(32, 'sh_size'));
    const strH = f.sections[symtabH.link];
    if (!strH || symtabH.link === 0 || strH.type !== SHT.STRTAB)
      elfFail(
        'ELF-BAD-LINK',
        `.symtab links to section ${symtabH.link}, which is not a string table`,
        fld(40, 'sh_link'),
      );
    const symtab = await f.readSection(symtabH);
    const strtab = await f.readSection(strH);
    if (strtab.length > 0 && strtab[strtab.length - 1] !== 0)
      elfFail('ELF-STRTAB-UNTERMINATED', `${strH.name} does not end with a NUL byte`, {
        file: path,
        offset: strH.offset + strH.size - 1,
        field: `section[${strH.index}] (${strH.name})`,
      });
    const shndxH = f.sections.find((s) => s.type === SHT.SYMTAB_SHNDX && s.link === symtabH.index);
    const xindex = shndxH ? await f.readSection(shndxH) : undefined;
    const isModule = f.header.type === 1;
    const modinfoH = isModule ? f.sections.find((s) => s.name === '.modinfo') : undefined;
    const modinfo = modinfoH ? await f.readSection(modinfoH) : undefined;
    const headers = f.sections;
    const count = symtab.length / SYM_SIZE;

    const symbols: KernelSymbol[] = new Array(Math.max(0, count - 1));
    const files: FileGroup[] = [];
    const basenameCount = new Map<string, number>();
    let current: FileGroup | undefined;
    for (let i = 1; i < count; i++) {
      const p = i * SYM_SIZE;
      const nameOff = symtab.readUInt32LE(p);
      if (nameOff >= strtab.length && nameOff !== 0)
        elfFail('ELF-BAD-NAME', `st_name = ${nameOff} is outside ${strH.name} (${strtab.length} bytes)`, {
          file: path,
          offset: symtabH.offset + p,
          field: `.symtab[${i}].st_name`,
        });
      const end = strtab.indexOf(0, nameOff);
      const name = nameOff >= strtab.length ? '' : strtab.toString('latin1', nameOff, end);
      const info = symtab[p + 4]!;
      let shndx = symtab.readUInt16LE(p + 6);
      if (shndx === SHN.XINDEX) {
        if (!xindex || xindex.length < (i + 1) * 4)
          elfFail('ELF-BAD-SHNDX', 'st_shndx is SHN_XINDEX but there is no matching SHT_SYMTAB_SHNDX entry', {
            file: path,
            offset: symtabH.offset + p + 6,
            field: `.symtab[${i}].st_shndx`,
          });
        shndx = xindex.readUInt32LE(i * 4);
      }
      const bind = info >> 4;
      const type = info & 0xf;
      const sec =
        shndx !== SHN.UNDEF && shndx < headers.length && (shndx < SHN.LORESERVE || xindex)
          ? headers[shndx]
          : undefined;
      const sym: KernelSymbol = {
        index: i,
        name,
        value: symtab.readBigUInt64LE(p + 8),
        size: symtab.readUInt32LE(p + 16) + symtab.readUInt32LE(p + 20) * 2 ** 32,
        type,
        bind,
        visibility: symtab[p + 5]! & 3,
        shndx,
        section: sec?.name,
        file: undefined,
        kallsyms: false,
        sympos: 0,
      };
      if (type === STT.FILE) {
        const ordinal = basenameCount.get(name) ?? 0;
        basenameCount.set(name, ordinal + 1);
        current = { basename: name, ordinal, index: i, symbols: [] };
        files.push(current);
      } else if (bind === STB.LOCAL) {
        if (current) {
          sym.file = current;
          current.symbols.push(sym);
        }
      } else {
        current = undefined;
      }
      symbols[i - 1] = sym;
    }

    // which symbols kallsyms sees, and in which order the livepatch core walks them
    const n = symbols.length;
    const rank = new Int32Array(n).fill(-1); // position in the kallsyms walk, -1 = not in kallsyms
    const visible: number[] = [];
    if (isModule) {
      for (let k = 0; k < n; k++) if (inModuleKallsyms(symbols[k]!, headers)) visible.push(k);
    } else {
      const flagsOf = (shndx: number) =>
        shndx < headers.length && shndx < SHN.LORESERVE ? headers[shndx]!.flags : undefined;
      for (let k = 0; k < n; k++) if (inVmlinuxKallsyms(symbols[k]!, flagsOf)) visible.push(k);
      // address order as two 32-bit halves (doubles cannot hold 64-bit addresses exactly)
      const hi = new Uint32Array(n);
      const lo = new Uint32Array(n);
      for (const k of visible) {
        hi[k] = symtab.readUInt32LE((k + 1) * SYM_SIZE + 12);
        lo[k] = symtab.readUInt32LE((k + 1) * SYM_SIZE + 8);
      }
      visible.sort((x, y) => {
        if (hi[x] !== hi[y]) return hi[x]! - hi[y]!;
        if (lo[x] !== lo[y]) return lo[x]! - lo[y]!;
        const a = symbols[x]!;
        const b = symbols[y]!;
        const w = (a.bind === STB.WEAK ? 1 : 0) - (b.bind === STB.WEAK ? 1 : 0);
        if (w !== 0) return w;
        const u = leadingUnderscores(a.name) - leadingUnderscores(b.name);
        if (u !== 0) return u;
        // nm -n breaks address ties by name, then kallsyms keeps that order
        if (a.name !== b.name) return a.name < b.name ? -1 : 1;
        return x - y;
      });
    }
    for (let r = 0; r < visible.length; r++) {
      rank[visible[r]!] = r;
      symbols[visible[r]!]!.kallsyms = true;
    }
    // group by name (one Map for everything); duplicates get their 1-based position in the walk
    const names = new Map<string, KernelSymbol[]>();
    for (const sym of symbols) {
      if (sym.name === '') continue;
      const g = names.get(sym.name);
      if (g) g.push(sym);
      else names.set(sym.name, [sym]);
    }
    for (const g of names.values()) {
      if (g.length < 2) continue;
      g.sort((a, b) => {
        const ra = rank[a.index - 1]!;
        const rb = rank[b.index - 1]!;
        if (ra < 0 || rb < 0) return ra < 0 && rb < 0 ? a.index - b.index : ra < 0 ? 1 : -1;
        return ra - rb;
      });
      let count = 0;
      for (const sym of g) if (sym.kallsyms) sym.sympos = ++count;
      if (count === 1) for (const sym of g) sym.sympos = 0;
    }

    const object = isModule ? moduleName(path, modinfo) : 'vmlinux';
    return new SymbolIndex(path, object, isModule ? 'module' : 'vmlinux', symbols, files, names);
  });
}

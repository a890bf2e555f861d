/*
 * Symbol index of a linked kernel object (vmlinux) or a module (.ko): which symbol is which, and its
 * sympos — the position the kernel's livepatch core will count when it resolves a klp relocation.
 *
 * Which symbols kallsyms sees and in what order are the kernel's rules (kallsyms.ts); the index itself is
 * a set of typed-array columns (symbol-columns.ts). This file is the query API over them.
 *
 * FILE symbols are basenames ("meminfo.c") and several translation units share one (e.g. many "core.c"),
 * so locals are grouped per FILE symbol in symtab order: `localsInFile("core.c")` returns every group.
 *
 * The symtab and strtab are read by offset with blocking preads (file-sync.ts); the rest of a 600 MB
 * vmlinux is never read. KernelSymbol objects are made (once) when a lookup returns them.
 */
import { elfFail } from './bounds.js';
import { ET, SHN, SHT, STB, SYM_SIZE } from './constants.js';
import { withElfFileSync } from './file-sync.js';
import { buildColumns, type Columns, type FileSpan, positionsNamed } from './symbol-columns.js';

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

/** The locals that follow one FILE symbol (a translation unit, as far as the symtab tells). */
export class FileGroup {
  constructor(
    /** the FILE symbol's name: a basename such as "meminfo.c" */
    readonly basename: string,
    /** 0-based position among groups with the same basename, in symtab order */
    readonly ordinal: number,
    /** symtab index of the FILE symbol */
    readonly index: number,
    /** symtab index one past its last local (the locals are the contiguous run after the FILE symbol) */
    private readonly end: number,
    private readonly ix: SymbolIndex,
  ) {}

  /** the locals that follow this FILE symbol, in symtab order */
  get symbols(): KernelSymbol[] {
    const out: KernelSymbol[] = [];
    for (let i = this.index + 1; i < this.end; i++) out.push(this.ix.at(i));
    return out;
  }
}

export class SymbolIndex {
  /** the klp object name: "vmlinux" or the module name (dashes turned to underscores) */
  readonly object: string;
  readonly kind: 'vmlinux' | 'module';
  readonly path: string;
  /** FILE groups in symtab order */
  readonly files: FileGroup[];
  /** number of symbols (without the null symbol) */
  readonly count: number;
  private readonly c: Columns;
  private readonly made: (KernelSymbol | undefined)[];
  private readonly groups = new Map<string, FileGroup[]>();
  private all: KernelSymbol[] | undefined;

  constructor(path: string, object: string, kind: 'vmlinux' | 'module', c: Columns, files: FileSpan[]) {
    this.path = path;
    this.object = object;
    this.kind = kind;
    this.c = c;
    this.count = c.nameStart.length;
    this.made = new Array(this.count);
    const ordinals = new Map<string, number>();
    this.files = files.map(({ basename, index, end }) => {
      const ordinal = ordinals.get(basename) ?? 0;
      ordinals.set(basename, ordinal + 1);
      const g = new FileGroup(basename, ordinal, index, end, this);
      const list = this.groups.get(basename);
      if (list) list.push(g);
      else this.groups.set(basename, [g]);
      return g;
    });
  }

  /** The symbol with symtab index `index` (1-based). */
  at(index: number): KernelSymbol {
    const k = index - 1;
    const made = this.made[k];
    if (made) return made;
    const c = this.c;
    if (k < 0 || k >= this.count) throw new RangeError(`no symbol ${index} in ${this.path}`);
    const p = index * SYM_SIZE;
    const info = c.symtab[p + 4]!;
    const shndx = c.shndx[k]!;
    const g = c.group[k]!;
    const sec = shndx !== SHN.UNDEF && shndx < c.headers.length ? c.headers[shndx] : undefined;
    const sym: KernelSymbol = {
      index,
      name: c.strtab.toString('latin1', c.nameStart[k]!, c.nameEnd[k]!),
      value: c.symtab.readBigUInt64LE(p + 8),
      size: c.symtab.readUInt32LE(p + 16) + c.symtab.readUInt32LE(p + 20) * 2 ** 32,
      type: info & 0xf,
      bind: info >> 4,
      visibility: c.symtab[p + 5]! & 3,
      shndx,
      section:
        sec && (shndx < SHN.LORESERVE || c.symtab.readUInt16LE(p + 6) === SHN.XINDEX) ? sec.name : undefined,
      file: g >= 0 ? this.files[g] : undefined,
      kallsyms: c.rank[k]! >= 0,
      sympos: c.sympos[k]!,
    };
    this.made[k] = sym;
    return sym;
  }

  /** All symbols except the null symbol, in symtab order (made on first use). */
  get symbols(): KernelSymbol[] {
    if (!this.all) {
      this.all = new Array(this.count);
      for (let i = 1; i <= this.count; i++) this.all[i - 1] = this.at(i);
    }
    return this.all;
  }

  /** Every symbol with that name: kallsyms-visible ones in sympos order, then the others in symtab order. */
  byName(name: string): KernelSymbol[] {
    const ks = positionsNamed(this.c, name);
    const rank = this.c.rank;
    ks.sort((a, b) => {
      const ra = rank[a]!;
      const rb = rank[b]!;
      if (ra < 0 || rb < 0) return ra < 0 && rb < 0 ? a - b : ra < 0 ? 1 : -1;
      return ra - rb;
    });
    return ks.map((k) => this.at(k + 1));
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
    const groups = new Set(this.localsInFile(fileBasename));
    return this.byName(name).filter((s) => s.file !== undefined && groups.has(s.file));
  }

  /** How many kallsyms-visible symbols carry this name (sympos is needed when > 1). */
  kallsymsCount(name: string): number {
    let n = 0;
    for (const s of this.byName(name)) if (s.kallsyms) n++;
    return n;
  }
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

export async function indexSymbols(path: string): Promise<SymbolIndex> {
  return withElfFileSync(path, (f) => {
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
    const symtab = f.readSection(symtabH);
    const strtab = f.readSection(strH);
    if (strtab.length > 0 && strtab[strtab.length - 1] !== 0)
      elfFail('ELF-STRTAB-UNTERMINATED', `${strH.name} does not end with a NUL byte`, {
        file: path,
        offset: strH.offset + strH.size - 1,
        field: `section[${strH.index}] (${strH.name})`,
      });
    const shndxH = f.sections.find((s) => s.type === SHT.SYMTAB_SHNDX && s.link === symtabH.index);
    const xindex = shndxH ? f.readSection(shndxH) : undefined;
    const isModule = f.header.type === ET.REL;
    const modinfoH = isModule ? f.sections.find((s) => s.name === '.modinfo') : undefined;
    const modinfo = modinfoH ? f.readSection(modinfoH) : undefined;
    const headers = f.sections;
    const { c, files } = buildColumns({ path, symtabH, strH, headers, symtab, strtab, xindex, isModule });
    const object = isModule ? moduleName(path, modinfo) : 'vmlinux';
    return new SymbolIndex(path, object, isModule ? 'module' : 'vmlinux', c, files);
  });
}

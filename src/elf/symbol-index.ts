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
 * The index itself is columnar: typed arrays over the raw symtab, names hashed on their bytes, so building
 * it allocates no per-symbol object; KernelSymbol objects are made (once) when a lookup returns them.
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

/** The locals that follow one FILE symbol (a translation unit, as far as the symtab tells). */
export class FileGroup {
  constructor(
    /** the FILE symbol's name: a basename such as "meminfo.c" */
    readonly basename: string,
    /** 0-based position among groups with the same basename, in symtab order */
    readonly ordinal: number,
    /** symtab index of the FILE symbol */
    readonly index: number,
    private readonly members: number[],
    private readonly ix: SymbolIndex,
  ) {}

  /** the locals that follow this FILE symbol, in symtab order */
  get symbols(): KernelSymbol[] {
    return this.members.map((k) => this.ix.at(k + 1));
  }
}

/** Columns of the symbol table, one entry per symbol (position k = symtab index k + 1). */
interface Columns {
  symtab: Buffer;
  strtab: Buffer;
  headers: RawSectionHeader[];
  nameStart: Uint32Array;
  nameEnd: Uint32Array;
  shndx: Uint32Array;
  /** FILE group number, or -1 */
  group: Int32Array;
  /** position in the kallsyms walk, or -1 when kallsyms does not see the symbol */
  rank: Int32Array;
  sympos: Uint32Array;
  /** name hash table: head[h] = first symbol of a distinct name; repNext chains distinct names */
  head: Int32Array;
  repNext: Int32Array;
  /** next symbol with the same name, in symtab order, or -1 */
  sameNext: Int32Array;
  mask: number;
}

function fnv(buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
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

  constructor(
    path: string,
    object: string,
    kind: 'vmlinux' | 'module',
    c: Columns,
    files: [string, number, number[]][],
  ) {
    this.path = path;
    this.object = object;
    this.kind = kind;
    this.c = c;
    this.count = c.nameStart.length;
    this.made = new Array(this.count);
    const ordinals = new Map<string, number>();
    this.files = files.map(([basename, index, members]) => {
      const ordinal = ordinals.get(basename) ?? 0;
      ordinals.set(basename, ordinal + 1);
      const g = new FileGroup(basename, ordinal, index, members, this);
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
    if (name === '') return [];
    const c = this.c;
    const key = Buffer.from(name, 'latin1');
    let r = c.head[fnv(key, 0, key.length) & c.mask]!;
    while (r !== -1 && key.compare(c.strtab, c.nameStart[r]!, c.nameEnd[r]!) !== 0) r = c.repNext[r]!;
    if (r === -1) return [];
    const ks: number[] = [];
    for (let k = r; k !== -1; k = c.sameNext[k]!) ks.push(k);
    const rank = c.rank;
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

/** scripts/mksysmap's and scripts/kallsyms.c's name rules: would this name be dropped? */
function ignoredName(n: string): boolean {
  for (const p of MKSYSMAP_PREFIXES) if (n.startsWith(p)) return true;
  if (KALLSYMS_IGNORED.has(n)) return true;
  for (const p of KALLSYMS_IGNORED_PREFIXES) if (n.startsWith(p)) return true;
  for (const p of KALLSYMS_IGNORED_SUFFIXES) if (n.endsWith(p)) return true;
  return n.includes('.long_branch.') || n.includes('.plt_branch.');
}

/** Can any rule of ignoredName apply? (Decides from the bytes whether the name must be decoded at all.) */
function mayBeIgnored(strtab: Buffer, start: number, end: number, hasDot: boolean): boolean {
  const first = strtab[start];
  const last = strtab[end - 1];
  // first bytes of every prefix and ignored name: $ . _ k L; last bytes of the suffixes: m b r
  return (
    hasDot ||
    first === 0x24 ||
    first === 0x2e ||
    first === 0x5f ||
    first === 0x6b ||
    first === 0x4c ||
    last === 0x6d ||
    last === 0x62 ||
    last === 0x72
  );
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

/**
 * Order symbols the way scripts/kallsyms.c does: by address, then non-weak first, fewer leading
 * underscores, nm's name order, symtab order. Addresses are 64-bit, so the sort runs per distinct upper
 * half, on doubles that pack (lower half, position) exactly and sort natively; only runs of equal
 * addresses (rare) go through the full comparison.
 */
function sortLikeKallsyms(visible: number[], symtab: Buffer, strtab: Buffer, c: Columns): void {
  const n = c.nameStart.length;
  let bits = 1;
  while (2 ** bits < n + 1) bits++;
  if (bits > 21) {
    visible.sort((x, y) => compareKallsyms(x, y, symtab, strtab, c));
    return;
  }
  const scale = 2 ** bits;
  const byHi = new Map<number, number[]>();
  for (const k of visible) {
    const hi = symtab.readUInt32LE((k + 1) * SYM_SIZE + 12);
    const list = byHi.get(hi);
    if (list) list.push(k);
    else byHi.set(hi, [k]);
  }
  let out = 0;
  for (const hi of [...byHi.keys()].sort((x, y) => x - y)) {
    const ks = byHi.get(hi)!;
    const keys = new Float64Array(ks.length);
    for (let i = 0; i < ks.length; i++)
      keys[i] = symtab.readUInt32LE((ks[i]! + 1) * SYM_SIZE + 8) * scale + ks[i]!;
    keys.sort();
    const start = out;
    for (let i = 0; i < keys.length; i++) visible[out++] = keys[i]! % scale;
    // equal addresses: kallsyms' tie-breaks
    for (let i = start; i < out; ) {
      let j = i + 1;
      const lo = Math.floor(keys[i - start]! / scale);
      while (j < out && Math.floor(keys[j - start]! / scale) === lo) j++;
      if (j - i > 1) {
        const run = visible.slice(i, j).sort((x, y) => compareKallsyms(x, y, symtab, strtab, c));
        for (let r = 0; r < run.length; r++) visible[i + r] = run[r]!;
      }
      i = j;
    }
  }
}

function compareKallsyms(x: number, y: number, symtab: Buffer, strtab: Buffer, c: Columns): number {
  const px = (x + 1) * SYM_SIZE;
  const py = (y + 1) * SYM_SIZE;
  const hx = symtab.readUInt32LE(px + 12);
  const hy = symtab.readUInt32LE(py + 12);
  if (hx !== hy) return hx - hy;
  const lx = symtab.readUInt32LE(px + 8);
  const ly = symtab.readUInt32LE(py + 8);
  if (lx !== ly) return lx - ly;
  const wx = symtab[px + 4]! >> 4 === STB.WEAK ? 1 : 0;
  const wy = symtab[py + 4]! >> 4 === STB.WEAK ? 1 : 0;
  if (wx !== wy) return wx - wy;
  const a = strtab.toString('latin1', c.nameStart[x]!, c.nameEnd[x]!);
  const b = strtab.toString('latin1', c.nameStart[y]!, c.nameEnd[y]!);
  const u = leadingUnderscores(a) - leadingUnderscores(b);
  if (u !== 0) return u;
  if (a !== b) return a < b ? -1 : 1;
  return x - y;
}

/** The symbols kallsyms keeps (vmlinux: nm + mksysmap + kallsyms.c rules; module: is_core_symbol). */
function kallsymsVisible(c: Columns, hasDot: Uint8Array, isModule: boolean): number[] {
  const { symtab, strtab, headers } = c;
  const n = c.nameStart.length;
  const visible: number[] = [];
  for (let k = 0; k < n; k++) {
    const start = c.nameStart[k]!;
    const end = c.nameEnd[k]!;
    if (end === start) continue;
    const shndx = c.shndx[k]!;
    const sec = shndx < headers.length && shndx < SHN.LORESERVE ? headers[shndx] : undefined;
    if (isModule) {
      // kernel/module/kallsyms.c is_core_symbol, CONFIG_KALLSYMS_ALL=y
      if (shndx === SHN.UNDEF || shndx >= headers.length || !sec) continue;
      if (sec.name !== '.data..percpu' && ((sec.flags & 0x2) === 0 || sec.name.startsWith('.init'))) continue;
    } else {
      const type = symtab[(k + 1) * SYM_SIZE + 4]! & 0xf;
      if (type === STT.FILE || type === STT.SECTION) continue;
      if (shndx === SHN.UNDEF || shndx === SHN.ABS) continue; // nm U, w, a, A
      if (sec && (sec.flags & 0x2) === 0) continue; // non-alloc: nm N/n
      if (
        mayBeIgnored(strtab, start, end, hasDot[k] === 1) &&
        ignoredName(strtab.toString('latin1', start, end))
      )
        continue;
    }
    visible.push(k);
  }
  return visible;
}

/** sympos: among same-named kallsyms symbols, the 1-based position in the walk (0 if unique). */
function assignSympos(c: Columns, isRep: Uint8Array): void {
  const n = c.nameStart.length;
  const dup: number[] = [];
  for (let r = 0; r < n; r++) {
    if (isRep[r] === 0 || c.sameNext[r] === -1) continue;
    dup.length = 0;
    for (let k = r; k !== -1; k = c.sameNext[k]!) if (c.rank[k]! >= 0) dup.push(k);
    if (dup.length < 2) continue;
    dup.sort((a, b) => c.rank[a]! - c.rank[b]!);
    for (let i = 0; i < dup.length; i++) c.sympos[dup[i]!] = i + 1;
  }
}

/**
 * The index proper: one pass over the symtab (name bounds + byte hash, section index, FILE groups, name
 * chains), the kallsyms filter and order, then sympos. A plain synchronous function, so the hot loops are
 * optimized as such.
 */
function buildColumns(
  path: string,
  symtabH: RawSectionHeader,
  strH: RawSectionHeader,
  headers: RawSectionHeader[],
  symtab: Buffer,
  strtab: Buffer,
  xindex: Buffer | undefined,
  isModule: boolean,
): { c: Columns; files: [string, number, number[]][] } {
  const n = Math.max(0, symtab.length / SYM_SIZE - 1);

  let size = 1;
  while (size < n * 2) size <<= 1;
  const c: Columns = {
    symtab,
    strtab,
    headers,
    nameStart: new Uint32Array(n),
    nameEnd: new Uint32Array(n),
    shndx: new Uint32Array(n),
    group: new Int32Array(n).fill(-1),
    rank: new Int32Array(n).fill(-1),
    sympos: new Uint32Array(n),
    head: new Int32Array(size).fill(-1),
    repNext: new Int32Array(n).fill(-1),
    sameNext: new Int32Array(n).fill(-1),
    mask: size - 1,
  };
  const tail = new Int32Array(n);
  const isRep = new Uint8Array(n);
  const hasDot = new Uint8Array(n);
  const files: [string, number, number[]][] = [];
  let current = -1;
  for (let k = 0; k < n; k++) {
    const p = (k + 1) * SYM_SIZE;
    const start = symtab.readUInt32LE(p);
    if (start >= strtab.length && start !== 0)
      elfFail('ELF-BAD-NAME', `st_name = ${start} is outside ${strH.name} (${strtab.length} bytes)`, {
        file: path,
        offset: symtabH.offset + p,
        field: `.symtab[${k + 1}].st_name`,
      });
    // hash the name while looking for its end
    let end = start;
    let h = 0x811c9dc5;
    let dot = 0;
    if (start < strtab.length)
      for (let b = strtab[end]!; b !== 0; b = strtab[++end]!) {
        h = Math.imul(h ^ b, 0x01000193);
        if (b === 0x2e) dot = 1;
      }
    c.nameStart[k] = start;
    c.nameEnd[k] = end;
    hasDot[k] = dot;
    let shndx = symtab.readUInt16LE(p + 6);
    if (shndx === SHN.XINDEX) {
      if (!xindex || xindex.length < (k + 2) * 4)
        elfFail('ELF-BAD-SHNDX', 'st_shndx is SHN_XINDEX but there is no matching SHT_SYMTAB_SHNDX entry', {
          file: path,
          offset: symtabH.offset + p + 6,
          field: `.symtab[${k + 1}].st_shndx`,
        });
      shndx = xindex.readUInt32LE((k + 1) * 4);
    }
    c.shndx[k] = shndx;
    const info = symtab[p + 4]!;
    if ((info & 0xf) === STT.FILE) {
      current = files.length;
      files.push([strtab.toString('latin1', start, end), k + 1, []]);
    } else if (info >> 4 === STB.LOCAL) {
      if (current >= 0) {
        c.group[k] = current;
        files[current]![2].push(k);
      }
    } else current = -1;
    if (end === start) continue;
    // group equal names: one representative per distinct name, chained by hash bucket
    const bucket = (h >>> 0) & c.mask;
    let r = c.head[bucket]!;
    while (r !== -1) {
      const rs = c.nameStart[r]!;
      if (c.nameEnd[r]! - rs === end - start) {
        // compare bytes in JS: a native Buffer.compare per candidate costs more than the names are long
        let i = 0;
        while (i < end - start && strtab[start + i] === strtab[rs + i]) i++;
        if (i === end - start) break;
      }
      r = c.repNext[r]!;
    }
    if (r === -1) {
      c.repNext[k] = c.head[bucket]!;
      c.head[bucket] = k;
      tail[k] = k;
      isRep[k] = 1;
    } else {
      c.sameNext[tail[r]!] = k;
      tail[r] = k;
    }
  }

  // which symbols kallsyms sees, and in which order the livepatch core walks them
  // (each phase is its own function: a single-shot pass is optimized per loop, without deopts between them)
  const visible = kallsymsVisible(c, hasDot, isModule);
  if (!isModule) sortLikeKallsyms(visible, symtab, strtab, c);
  for (let r = 0; r < visible.length; r++) c.rank[visible[r]!] = r;
  assignSympos(c, isRep);
  return { c, files };
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
    const symtab = f.readSectionSync(symtabH);
    const strtab = f.readSectionSync(strH);
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
    const { c, files } = buildColumns(path, symtabH, strH, headers, symtab, strtab, xindex, isModule);
    const object = isModule ? moduleName(path, modinfo) : 'vmlinux';
    return new SymbolIndex(path, object, isModule ? 'module' : 'vmlinux', c, files);
  });
}

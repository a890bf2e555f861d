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
 * The symtab and strtab are read by offset with blocking preads (file-sync.ts); the rest of a 600 MB
 * vmlinux is never read. The index itself is columnar: typed arrays over the raw symtab (a 32-bit view,
 * no copy), names hashed on their bytes, kallsyms' name rules matched on bytes, FILE groups as contiguous
 * ranges, so building it allocates no per-symbol object and decodes no name but the FILE names;
 * KernelSymbol objects are made (once) when a lookup returns them. sympos only needs the relative kallsyms
 * order of same-named symbols, so only the names kallsyms holds more than once are sorted. Most uses are a
 * fresh CLI process, where V8 has not compiled anything yet: the passes are small loops (each compiled
 * quickly by on-stack replacement) rather than one large one (slow to compile, deoptimized by rare paths).
 */
import { elfFail } from './bounds.js';
import { SHN, SHT, STB, STT, SYM_SIZE } from './constants.js';
import { withElfFileSync } from './file-sync.js';
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

/** A FILE symbol while indexing: its name, symtab index, and one past the last local that follows it. */
interface FileSpan {
  basename: string;
  index: number;
  end: number;
}

/** Columns of the symbol table, one entry per symbol (position k = symtab index k + 1). */
interface Columns {
  symtab: Buffer;
  /** the symtab as little-endian 32-bit words: symbol i at words 6i..6i+5 */
  words: Uint32Array;
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
const KALLSYMS_IGNORED = [
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
];
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
const KALLSYMS_IGNORED_INFIXES = ['.long_branch.', '.plt_branch.'];

const bytesOf = (list: string[]) => list.map((s) => new Uint8Array(Buffer.from(s, 'latin1')));
const PREFIX_BYTES = bytesOf([...MKSYSMAP_PREFIXES, ...KALLSYMS_IGNORED_PREFIXES]);
const EXACT_BYTES = bytesOf(KALLSYMS_IGNORED);
const SUFFIX_BYTES = bytesOf(KALLSYMS_IGNORED_SUFFIXES);
const INFIX_BYTES = bytesOf(KALLSYMS_IGNORED_INFIXES);

const LITTLE_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Does strtab[at..] start with `p`? (the caller has checked that it fits) */
function bytesAt(strtab: Uint8Array, at: number, p: Uint8Array): boolean {
  for (let i = 0; i < p.length; i++) if (strtab[at + i] !== p[i]) return false;
  return true;
}

/**
 * scripts/mksysmap's and scripts/kallsyms.c's name rules, on the name's bytes (no string is made):
 * would the name strtab[start, end) be dropped from kallsyms?
 */
function ignoredName(strtab: Uint8Array, start: number, end: number, hasDot: boolean): boolean {
  const len = end - start;
  const first = strtab[start];
  // first bytes of every prefix and ignored name: $ . _ k L
  if (first === 0x24 || first === 0x2e || first === 0x5f || first === 0x6b || first === 0x4c) {
    for (let j = 0; j < PREFIX_BYTES.length; j++) {
      const p = PREFIX_BYTES[j]!;
      if (p.length <= len && bytesAt(strtab, start, p)) return true;
    }
    for (let j = 0; j < EXACT_BYTES.length; j++) {
      const p = EXACT_BYTES[j]!;
      if (p.length === len && bytesAt(strtab, start, p)) return true;
    }
  }
  // last bytes of the suffixes: m b r
  const last = strtab[end - 1];
  if (last === 0x6d || last === 0x62 || last === 0x72)
    for (let j = 0; j < SUFFIX_BYTES.length; j++) {
      const p = SUFFIX_BYTES[j]!;
      if (p.length <= len && bytesAt(strtab, end - p.length, p)) return true;
    }
  if (hasDot)
    for (let i = start; i < end; i++) {
      if (strtab[i] !== 0x2e) continue;
      for (let j = 0; j < INFIX_BYTES.length; j++) {
        const p = INFIX_BYTES[j]!;
        if (i + p.length <= end && bytesAt(strtab, i, p)) return true;
      }
    }
  return false;
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
 * The order of scripts/kallsyms.c: by address, then non-weak first, fewer leading underscores, nm's name
 * order, symtab order. Only same-named symbols are ever compared (sympos counts within a name), so only
 * the few names that kallsyms holds more than once are sorted, never the whole table.
 */
function compareKallsyms(x: number, y: number, c: Columns): number {
  const w = c.words;
  const qx = (x + 1) * 6;
  const qy = (y + 1) * 6;
  const hx = w[qx + 3]!;
  const hy = w[qy + 3]!;
  if (hx !== hy) return hx - hy;
  const lx = w[qx + 2]!;
  const ly = w[qy + 2]!;
  if (lx !== ly) return lx - ly;
  const wx = (w[qx + 1]! & 0xff) >> 4 === STB.WEAK ? 1 : 0;
  const wy = (w[qy + 1]! & 0xff) >> 4 === STB.WEAK ? 1 : 0;
  if (wx !== wy) return wx - wy;
  const a = c.strtab.toString('latin1', c.nameStart[x]!, c.nameEnd[x]!);
  const b = c.strtab.toString('latin1', c.nameStart[y]!, c.nameEnd[y]!);
  const u = leadingUnderscores(a) - leadingUnderscores(b);
  if (u !== 0) return u;
  if (a !== b) return a < b ? -1 : 1;
  return x - y;
}

/** The symtab as 32-bit little-endian words (symbol k + 1 starts at word 6 (k + 1)), without a copy when it can. */
function wordsOf(symtab: Buffer): Uint32Array {
  const n = symtab.length >>> 2;
  if (LITTLE_HOST && symtab.byteOffset % 4 === 0) return new Uint32Array(symtab.buffer, symtab.byteOffset, n);
  const w = new Uint32Array(n);
  for (let i = 0; i < n; i++) w[i] = symtab.readUInt32LE(i * 4);
  return w;
}

/*
 * The index proper, as a few small passes over the symtab, each a tight loop over typed arrays: a fresh
 * process spends its time in them before and while V8 compiles them, and a small loop whose every path
 * has run before it is compiled is compiled sooner, faster and without deoptimizations. Rare paths
 * (FILE symbols, SHN_XINDEX, errors) live in functions of their own. Nothing per symbol is allocated.
 */

/**
 * Pass 1: where each name ends, its byte hash, whether it contains a dot; st_shndx (SHN_XINDEX resolved
 * later) and st_info. Returns the first bad st_name, or -1.
 */
function scanNames(
  w: Uint32Array,
  strtab: Uint8Array,
  nameStart: Uint32Array,
  nameEnd: Uint32Array,
  hash: Uint32Array,
  dots: Uint8Array,
  shndx: Uint32Array,
  info: Uint8Array,
): number {
  const n = nameStart.length;
  const slen = strtab.length;
  for (let k = 0; k < n; k++) {
    const q = (k + 1) * 6;
    const start = w[q]!;
    const word = w[q + 1]!;
    shndx[k] = word >>> 16;
    info[k] = word & 0xff;
    let end = start;
    let h = 0x811c9dc5;
    let dot = 0;
    if (start < slen) {
      // the strtab ends with a NUL (checked)
      for (let b = strtab[end]!; b !== 0; b = strtab[++end]!) {
        h = Math.imul(h ^ b, 0x01000193);
        dot |= b === 0x2e ? 1 : 0;
      }
    } else if (start !== 0) return k;
    nameStart[k] = start;
    nameEnd[k] = end;
    hash[k] = h;
    dots[k] = dot;
  }
  return -1;
}

function resolveXindex(
  path: string,
  symtabH: RawSectionHeader,
  shndx: Uint32Array,
  xindex: Buffer | undefined,
): void {
  for (let k = 0; k < shndx.length; k++) {
    if (shndx[k] !== SHN.XINDEX) continue;
    if (!xindex || xindex.length < (k + 2) * 4)
      elfFail('ELF-BAD-SHNDX', 'st_shndx is SHN_XINDEX but there is no matching SHT_SYMTAB_SHNDX entry', {
        file: path,
        offset: symtabH.offset + (k + 1) * SYM_SIZE + 6,
        field: `.symtab[${k + 1}].st_shndx`,
      });
    shndx[k] = xindex.readUInt32LE((k + 1) * 4);
  }
}

/**
 * Pass 3: FILE groups. A FILE symbol opens a group; the locals after it belong to it until the next FILE
 * symbol or the first non-local, so each group is the contiguous run after its FILE symbol.
 */
function scanFiles(info: Uint8Array, group: Int32Array, fileAt: number[], fileEnd: number[]): void {
  const n = info.length;
  let current = -1;
  for (let k = 0; k < n; k++) {
    const i = info[k]!;
    if ((i & 0xf) === STT.FILE) {
      current = fileAt.length;
      fileAt.push(k);
      fileEnd.push(k + 2);
    } else if (i >> 4 === STB.LOCAL) {
      if (current >= 0) {
        group[k] = current;
        fileEnd[current] = k + 2;
      }
    } else current = -1;
  }
}

/** Pass 4: one representative per distinct name, chained per hash bucket; same names chained in symtab order. */
function chainNames(c: Columns, strtab: Uint8Array, hash: Uint32Array, rep: Int32Array): void {
  const { nameStart, nameEnd, head, repNext, sameNext, mask } = c;
  const n = nameStart.length;
  const tail = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const start = nameStart[k]!;
    const len = nameEnd[k]! - start;
    if (len === 0) continue;
    const bucket = hash[k]! & mask;
    let r = head[bucket]!;
    while (r !== -1) {
      const rs = nameStart[r]!;
      if (rs === start) break; // the linker merged equal names into one string
      if (nameEnd[r]! - rs === len) {
        let i = 0;
        while (i < len && strtab[start + i] === strtab[rs + i]) i++;
        if (i === len) break;
      }
      r = repNext[r]!;
    }
    if (r === -1) {
      repNext[k] = head[bucket]!;
      head[bucket] = k;
      tail[k] = k;
      rep[k] = k;
    } else {
      sameNext[tail[r]!] = k;
      tail[r] = k;
      rep[k] = r;
    }
  }
}

/** The ignored prefixes that start with `__`, by their third byte. */
const UNDERSCORE_PREFIXES: Uint8Array[][] = Array.from({ length: 256 }, () => []);
for (const p of PREFIX_BYTES) if (p[0] === 0x5f && p[1] === 0x5f) UNDERSCORE_PREFIXES[p[2]!]!.push(p);

/**
 * Does a name that starts with `__` start with one of the ignored `__` prefixes (__crc_, __kstrtab_, ...)?
 * Many kernel names start with `__`, and __kstrtab_/__crc_ are a quarter of a vmlinux symtab: this is
 * ignoredName's prefix rule for them, with one comparison instead of a walk over every rule.
 */
function underscorePrefixIgnored(strtab: Uint8Array, start: number, len: number): boolean {
  if (len < 3) return false;
  const list = UNDERSCORE_PREFIXES[strtab[start + 2]!]!;
  for (let j = 0; j < list.length; j++) {
    const p = list[j]!;
    if (p.length <= len && bytesAt(strtab, start, p)) return true;
  }
  return false;
}

/**
 * Pass 5: the symbols kallsyms keeps, by symbol fields and section (vmlinux: nm + mksysmap rules; module:
 * is_core_symbol), and for vmlinux the name rules of mksysmap and kallsyms.c. Each gets rank 0, and
 * `dupReps` collects the names kallsyms holds more than once (the only ones sympos has to order).
 */
function scanVisible(
  c: Columns,
  info: Uint8Array,
  dropSection: Uint8Array,
  isModule: boolean,
  strtab: Uint8Array,
  dots: Uint8Array,
  rep: Int32Array,
  seen: Uint32Array,
  dupReps: number[],
): void {
  const { nameStart, nameEnd, shndx, rank } = c;
  const n = nameStart.length;
  const nsec = dropSection.length;
  for (let k = 0; k < n; k++) {
    const start = nameStart[k]!;
    const end = nameEnd[k]!;
    if (end === start) continue;
    const s = shndx[k]!;
    if (isModule) {
      if (s === SHN.UNDEF || s >= nsec || dropSection[s] === 1) continue;
    } else {
      const type = info[k]! & 0xf;
      if (type === STT.FILE || type === STT.SECTION) continue;
      if (s === SHN.UNDEF || s === SHN.ABS) continue; // nm U, w, a, A
      if (s < nsec && dropSection[s] === 1) continue; // non-alloc: nm N/n
      // the name rules: the prefix rules where the first bytes can match ($ . __ _S ka L), then the suffix
      // and infix rules where the last bytes or a dot can match
      const len = end - start;
      const first = strtab[start]!;
      const second = len > 1 ? strtab[start + 1]! : 0;
      const last = strtab[end - 1]!;
      const before = len > 1 ? strtab[end - 2]! : 0;
      if (first === 0x5f && second === 0x5f) {
        if (underscorePrefixIgnored(strtab, start, len)) continue;
      } else if (
        first === 0x24 ||
        first === 0x2e ||
        (first === 0x5f && second === 0x53) ||
        (first === 0x6b && second === 0x61) ||
        first === 0x4c
      ) {
        if (ignoredName(strtab, start, end, dots[k] === 1)) continue;
      }
      // the suffix and infix rules (ignoredName checks the prefix rules again: harmless)
      if (
        dots[k] === 1 ||
        (last === 0x6d && before === 0x72) ||
        (last === 0x62 && before === 0x6d) ||
        (last === 0x72 && before === 0x65)
      ) {
        if (ignoredName(strtab, start, end, dots[k] === 1)) continue;
      }
    }
    // kallsyms sees it: count its name, and remember the names seen twice
    rank[k] = 0;
    const r = rep[k]!;
    const times = seen[r]! + 1;
    seen[r] = times;
    if (times === 2) dupReps.push(r);
  }
}

/**
 * sympos: among same-named kallsyms symbols, the 1-based position in the livepatch core's walk (vmlinux:
 * kallsyms order; module: symtab order), 0 if the name is unique. `rank` gets the same position (0 for a
 * unique name): byName orders by it, and rank >= 0 says kallsyms sees the symbol.
 */
function assignSympos(c: Columns, dupReps: number[], isModule: boolean): void {
  const { rank, sympos, sameNext } = c;
  const same: number[] = [];
  for (const r of dupReps) {
    same.length = 0;
    for (let k = r; k !== -1; k = sameNext[k]!) if (rank[k] === 0) same.push(k);
    if (!isModule) same.sort((x, y) => compareKallsyms(x, y, c));
    for (let j = 0; j < same.length; j++) {
      rank[same[j]!] = j;
      sympos[same[j]!] = j + 1;
    }
  }
}

function buildColumns(
  path: string,
  symtabH: RawSectionHeader,
  strH: RawSectionHeader,
  headers: RawSectionHeader[],
  symtab: Buffer,
  strtab: Buffer,
  xindex: Buffer | undefined,
  isModule: boolean,
): { c: Columns; files: FileSpan[] } {
  const n = Math.max(0, symtab.length / SYM_SIZE - 1);
  let size = 1;
  while (size < n * 2) size <<= 1;
  const c: Columns = {
    symtab,
    strtab,
    words: wordsOf(symtab),
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
  // a plain Uint8Array view: indexing it is what the passes do most, so keep its map monomorphic
  const bytes = new Uint8Array(strtab.buffer, strtab.byteOffset, strtab.length);
  const hash = new Uint32Array(n);
  const dots = new Uint8Array(n);
  const info = new Uint8Array(n);
  const bad = scanNames(c.words, bytes, c.nameStart, c.nameEnd, hash, dots, c.shndx, info);
  if (bad >= 0)
    elfFail(
      'ELF-BAD-NAME',
      `st_name = ${c.words[(bad + 1) * 6]} is outside ${strH.name} (${strtab.length} bytes)`,
      {
        file: path,
        offset: symtabH.offset + (bad + 1) * SYM_SIZE,
        field: `.symtab[${bad + 1}].st_name`,
      },
    );
  if (c.shndx.includes(SHN.XINDEX)) resolveXindex(path, symtabH, c.shndx, xindex);
  const fileAt: number[] = [];
  const fileEnd: number[] = [];
  scanFiles(info, c.group, fileAt, fileEnd);
  const files: FileSpan[] = fileAt.map((k, i) => ({
    basename: strtab.toString('latin1', c.nameStart[k]!, c.nameEnd[k]!),
    index: k + 1,
    end: fileEnd[i]!,
  }));
  const rep = new Int32Array(n);
  chainNames(c, bytes, hash, rep);

  // per section: 1 = its symbols are dropped from kallsyms (vmlinux: not allocated, nm N/n;
  // module: not a core section, kernel/module/kallsyms.c is_core_symbol with CONFIG_KALLSYMS_ALL=y)
  const nsec = Math.min(headers.length, SHN.LORESERVE);
  const dropSection = new Uint8Array(nsec);
  for (let i = 0; i < nsec; i++) {
    const sec = headers[i]!;
    const alloc = (sec.flags & 0x2) !== 0;
    if (isModule)
      dropSection[i] = sec.name !== '.data..percpu' && (!alloc || sec.name.startsWith('.init')) ? 1 : 0;
    else dropSection[i] = alloc ? 0 : 1;
  }
  const dupReps: number[] = [];
  scanVisible(c, info, dropSection, isModule, bytes, dots, rep, new Uint32Array(n), dupReps);
  assignSympos(c, dupReps, isModule);
  return { c, files };
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
    const isModule = f.header.type === 1;
    const modinfoH = isModule ? f.sections.find((s) => s.name === '.modinfo') : undefined;
    const modinfo = modinfoH ? f.readSection(modinfoH) : undefined;
    const headers = f.sections;
    const { c, files } = buildColumns(path, symtabH, strH, headers, symtab, strtab, xindex, isModule);
    const object = isModule ? moduleName(path, modinfo) : 'vmlinux';
    return new SymbolIndex(path, object, isModule ? 'module' : 'vmlinux', c, files);
  });
}

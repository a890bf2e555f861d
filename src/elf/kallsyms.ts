/*
 * The kernel's kallsyms rules: which symbols of a vmlinux or a module kallsyms holds, in what order, and
 * so the sympos the livepatch core counts when it resolves a klp relocation.
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
 * The rules run as passes of the column engine (symbol-columns.ts) over the raw symtab: names are matched
 * on their bytes, no string is made, and only the names kallsyms holds more than once are ever sorted.
 */
import { SHF, SHN, STB, STT } from './constants.js';
import type { RawSectionHeader } from './headers.js';

/** The columns the kallsyms passes read and fill (a part of the engine's Columns, position k = symbol k + 1). */
export interface KallsymsColumns {
  /** the symtab as little-endian 32-bit words: symbol i at words 6i..6i+5 */
  words: Uint32Array;
  strtab: Buffer;
  nameStart: Uint32Array;
  nameEnd: Uint32Array;
  shndx: Uint32Array;
  /** position in the kallsyms walk, or -1 when kallsyms does not see the symbol */
  rank: Int32Array;
  sympos: Uint32Array;
  /** next symbol with the same name, in symtab order, or -1 */
  sameNext: Int32Array;
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

function leadingUnderscores(s: string): number {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) === 95) i++;
  return i;
}

/**
 * The order of scripts/kallsyms.c: by address, then non-weak first, fewer leading underscores, nm's name
 * order, symtab order. Only same-named symbols are ever compared (sympos counts within a name), so only
 * the few names that kallsyms holds more than once are sorted, never the whole table.
 */
function compareKallsyms(x: number, y: number, c: KallsymsColumns): number {
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

/**
 * Per section: 1 = its symbols are dropped from kallsyms (vmlinux: not allocated, nm N/n; module: not a
 * core section, kernel/module/kallsyms.c is_core_symbol with CONFIG_KALLSYMS_ALL=y).
 */
export function droppedSections(headers: RawSectionHeader[], isModule: boolean): Uint8Array {
  const nsec = Math.min(headers.length, SHN.LORESERVE);
  const drop = new Uint8Array(nsec);
  for (let i = 0; i < nsec; i++) {
    const sec = headers[i]!;
    const alloc = (sec.flags & SHF.ALLOC) !== 0;
    if (isModule) drop[i] = sec.name !== '.data..percpu' && (!alloc || sec.name.startsWith('.init')) ? 1 : 0;
    else drop[i] = alloc ? 0 : 1;
  }
  return drop;
}

/**
 * The symbols kallsyms keeps, by symbol fields and section (vmlinux: nm + mksysmap rules; module:
 * is_core_symbol), and for vmlinux the name rules of mksysmap and kallsyms.c. Each gets rank 0, and
 * `dupReps` collects the names kallsyms holds more than once (the only ones sympos has to order).
 * `rep[k]` is the first symbol with k's name, `dots[k]` whether the name has a dot, `seen` a zeroed count.
 */
export function scanVisible(
  c: KallsymsColumns,
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
export function assignSympos(c: KallsymsColumns, dupReps: number[], isModule: boolean): void {
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

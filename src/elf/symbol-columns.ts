/*
 * The column engine behind the symbol index: a symbol table as typed arrays, built in a few small passes.
 *
 * The index is columnar: typed arrays over the raw symtab (a 32-bit view, no copy), names hashed on their
 * bytes, FILE groups as contiguous ranges, so building it allocates no per-symbol object and decodes no
 * name but the FILE names. Which symbols kallsyms sees and their sympos are the kallsyms passes
 * (kallsyms.ts), run here over the same columns.
 *
 * Most uses are a fresh CLI process, where V8 has not compiled anything yet: the passes are small loops,
 * each a tight loop over typed arrays (compiled quickly by on-stack replacement) rather than one large one
 * (slow to compile, deoptimized by rare paths). A small loop whose every path has run before it is
 * compiled is compiled sooner, faster and without deoptimizations. Rare paths (FILE symbols, SHN_XINDEX,
 * errors) live in functions of their own. Nothing per symbol is allocated.
 */
import { elfFail } from './bounds.js';
import { SHN, STB, STT, SYM_SIZE } from './constants.js';
import type { RawSectionHeader } from './headers.js';
import { assignSympos, droppedSections, type KallsymsColumns, scanVisible } from './kallsyms.js';

/** A FILE symbol while indexing: its name, symtab index, and one past the last local that follows it. */
export interface FileSpan {
  basename: string;
  index: number;
  end: number;
}

/** Columns of the symbol table, one entry per symbol (position k = symtab index k + 1). */
export interface Columns extends KallsymsColumns {
  symtab: Buffer;
  headers: RawSectionHeader[];
  /** FILE group number, or -1 */
  group: Int32Array;
  /** name hash table: head[h] = first symbol of a distinct name; repNext chains distinct names */
  head: Int32Array;
  repNext: Int32Array;
  mask: number;
}

/** The raw sections a symbol table is built from, as read from the file (checked by the caller). */
export interface SymtabInput {
  path: string;
  symtabH: RawSectionHeader;
  strH: RawSectionHeader;
  headers: RawSectionHeader[];
  symtab: Buffer;
  strtab: Buffer;
  xindex: Buffer | undefined;
  isModule: boolean;
}

function fnv(buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/** Positions (symtab index - 1) of every symbol named `name`, in symtab order. */
export function positionsNamed(c: Columns, name: string): number[] {
  if (name === '') return [];
  const key = Buffer.from(name, 'latin1');
  let r = c.head[fnv(key, 0, key.length) & c.mask]!;
  while (r !== -1 && key.compare(c.strtab, c.nameStart[r]!, c.nameEnd[r]!) !== 0) r = c.repNext[r]!;
  const ks: number[] = [];
  for (let k = r; k !== -1; k = c.sameNext[k]!) ks.push(k);
  return ks;
}

const LITTLE_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The symtab as 32-bit little-endian words (symbol k + 1 starts at word 6 (k + 1)), without a copy when it can. */
function wordsOf(symtab: Buffer): Uint32Array {
  const n = symtab.length >>> 2;
  if (LITTLE_HOST && symtab.byteOffset % 4 === 0) return new Uint32Array(symtab.buffer, symtab.byteOffset, n);
  const w = new Uint32Array(n);
  for (let i = 0; i < n; i++) w[i] = symtab.readUInt32LE(i * 4);
  return w;
}

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

/** Pass 2 (rare): st_shndx values of SHN_XINDEX replaced by their SHT_SYMTAB_SHNDX entry. */
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

function emptyColumns(symtab: Buffer, strtab: Buffer, headers: RawSectionHeader[]): Columns {
  const n = Math.max(0, symtab.length / SYM_SIZE - 1);
  let size = 1;
  while (size < n * 2) size <<= 1;
  return {
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
}

/** The columns of one symbol table and its FILE groups: every pass, in order. */
export function buildColumns(input: SymtabInput): { c: Columns; files: FileSpan[] } {
  const { path, symtabH, strH, headers, symtab, strtab, xindex, isModule } = input;
  const c = emptyColumns(symtab, strtab, headers);
  const n = c.nameStart.length;
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
  const dupReps: number[] = [];
  const drop = droppedSections(headers, isModule);
  scanVisible(c, info, drop, isModule, bytes, dots, rep, new Uint32Array(n), dupReps);
  assignSympos(c, dupReps, isModule);
  return { c, files };
}

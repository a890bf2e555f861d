/*
 * Comparison: is a function (or data object) of the patched object the same as its original?
 *
 * Bytes alone cannot tell: every place a relocation will fill in is zero (or an addend) in a
 * relocatable object, and where a referenced string or variable sits inside its section depends on
 * the rest of the file. So we compare what the code *means*: the bytes outside relocation fields must
 * be equal, and each relocation must have the same offset, the same type and the same target — where
 * the target is named by what it is (the correlated symbol plus the offset into it, or the string
 * literal's text), never by where the linker will put it. A string that moved inside `.rodata.str1.1`
 * because another function's string grew is not a change; a call that now goes to another function is.
 */
import { R_X86_64, SHF, SHT, STB, STT } from '../elf/constants.js';
import type { ElfObject, ElfRelocation, ElfSection, ElfSymbol } from '../elf/model.js';

/** How a symbol is called across the two objects (original name for correlated symbols). */
export type CanonicalName = (symbol: ElfSymbol) => string;

/** An x86-64 relocation type by its psABI name (`PC32` for R_X86_64_PC32). */
function rel(name: string): number {
  const t = R_X86_64[name];
  if (t === undefined) throw new Error(`internal: no relocation type R_X86_64_${name}`);
  return t;
}

/** Width in bytes of the field a relocation writes, for the types that do not write 4 bytes. */
const WIDTH = new Map<number, number>([
  [rel('NONE'), 0],
  [rel('64'), 8],
  [rel('PC64'), 8],
  [rel('GOTOFF64'), 8],
  [rel('GOTPC64'), 8],
  [rel('16'), 2],
  [rel('PC16'), 2],
  [rel('8'), 1],
  [rel('PC8'), 1],
]);

/** Width in bytes of the field a relocation of this type writes. */
export function relocationWidth(type: number): number {
  return WIDTH.get(type) ?? 4;
}

const PC_RELATIVE = new Set(
  [
    'PC32',
    'PLT32',
    'GOTPCREL',
    'PC16',
    'PC8',
    'PC64',
    'GOTPC32',
    'GOTPC64',
    'GOTPCRELX',
    'REX_GOTPCRELX',
  ].map(rel),
);

export function isPcRelative(type: number): boolean {
  return PC_RELATIVE.has(type);
}

/** Defined FUNC/OBJECT symbols per section, sorted by value: to name what a section-relative reference hits. */
export class SymbolMap {
  private readonly bySection = new Map<ElfSection, ElfSymbol[]>();
  constructor(readonly obj: ElfObject) {
    for (const s of obj.symbols) {
      if (!s.section || (s.type !== STT.FUNC && s.type !== STT.OBJECT)) continue;
      const l = this.bySection.get(s.section) ?? [];
      l.push(s);
      this.bySection.set(s.section, l);
    }
    for (const l of this.bySection.values()) l.sort((a, b) => Number(a.value - b.value));
  }
  symbolsIn(section: ElfSection): ElfSymbol[] {
    return this.bySection.get(section) ?? [];
  }
  /** The symbol whose extent holds `pos`, preferring the exact start. */
  covering(section: ElfSection, pos: number): ElfSymbol | undefined {
    let best: ElfSymbol | undefined;
    for (const s of this.symbolsIn(section)) {
      const v = Number(s.value);
      if (v === pos && (!best || Number(best.value) !== pos)) best = s;
      else if (!best && v <= pos && pos < v + s.size) best = s;
    }
    return best;
  }
}

const relocationCache = new WeakMap<ElfObject, Map<ElfSection, ElfRelocation[]>>();

/** Every relocation of `obj` by the section it applies to, sorted by offset (computed once per object). */
function relocationsBySection(obj: ElfObject): Map<ElfSection, ElfRelocation[]> {
  let m = relocationCache.get(obj);
  if (!m) {
    m = new Map();
    for (const s of obj.sections) {
      if (!s.relocations || !s.infoSection) continue;
      const list = m.get(s.infoSection) ?? [];
      list.push(...s.relocations);
      m.set(s.infoSection, list);
    }
    for (const list of m.values())
      list.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    relocationCache.set(obj, m);
  }
  return m;
}

/**
 * Relocations applying to `section` with offsets in [start, end), sorted by offset. The objects being
 * compared are read-only during a comparison, so the per-object index is never stale.
 */
export function relocationsIn(
  obj: ElfObject,
  section: ElfSection,
  start = 0,
  end = Number.POSITIVE_INFINITY,
): ElfRelocation[] {
  const all = relocationsBySection(obj).get(section) ?? [];
  if (start === 0 && end === Number.POSITIVE_INFINITY) return all.slice();
  return all.filter((r) => {
    const off = Number(r.offset);
    return off >= start && off < end;
  });
}

export function isStringSection(s: ElfSection): boolean {
  return (s.flags & SHF.MERGE) !== 0 && (s.flags & SHF.STRINGS) !== 0;
}

/** The NUL-terminated string starting at `pos`, if `pos` is the start of one. */
export function stringStartingAt(data: Uint8Array, pos: number): string | undefined {
  if (pos < 0 || pos >= data.length) return undefined;
  if (pos > 0 && data[pos - 1] !== 0) return undefined;
  let end = pos;
  while (end < data.length && data[end] !== 0) end++;
  return Buffer.from(data.subarray(pos, end)).toString('latin1');
}

/**
 * Where in its section a section-relative reference really points. Absolute references carry the
 * offset as addend; PC-relative ones subtract the distance from the field to the end of the
 * instruction (4, or more when an immediate follows), so we try the usual distances.
 */
export function stringTarget(
  section: ElfSection,
  rel: ElfRelocation,
): { pos: number; text: string } | undefined {
  const addend = Number(rel.addend);
  const candidates = isPcRelative(rel.type) ? [addend + 4, addend + 5, addend + 6, addend + 8] : [addend];
  for (const pos of candidates) {
    const text = stringStartingAt(section.data, pos);
    if (text !== undefined) return { pos, text };
  }
  return undefined;
}

export interface ResolvedTarget {
  /** identity used for comparison */
  identity: string;
  /** human words for messages */
  describe: string;
  /** the defined symbol the reference lands in (named or covering), if any */
  symbol?: ElfSymbol;
  /** offset of the reference relative to `symbol` (addend adjusted) */
  symbolAddend?: bigint;
}

/** Name what a relocation points at, independently of layout. */
export function resolveTarget(rel: ElfRelocation, map: SymbolMap, canon: CanonicalName): ResolvedTarget {
  const sym = rel.symbol;
  if (!sym) return { identity: `abs+${rel.addend}`, describe: `absolute ${rel.addend}` };
  // an assembler label (`.LC0`) or a section symbol: name the target by what is there
  const anonymous =
    sym.section !== null &&
    (sym.type === STT.SECTION || (sym.type === STT.NOTYPE && sym.name.startsWith('.L')));
  if (anonymous && sym.section && sym.type !== STT.SECTION) {
    return resolveTarget(
      { ...rel, symbol: sectionSymbolOf(sym), addend: rel.addend + sym.value },
      map,
      canon,
    );
  }
  if (sym.type === STT.SECTION && sym.section) {
    const sec = sym.section;
    if ((sec.flags & SHF.MERGE) !== 0 && !isStringSection(sec) && sec.entsize > 0) {
      const raw = Number(rel.addend);
      const start = Math.floor((raw + (isPcRelative(rel.type) ? 4 : 0)) / sec.entsize) * sec.entsize;
      const bytes = Buffer.from(sec.data.subarray(start, start + sec.entsize)).toString('hex');
      return { identity: `cst:${sec.entsize}:${bytes}${raw - start}`, describe: `constant 0x${bytes}` };
    }
    if (isStringSection(sec)) {
      const t = stringTarget(sec, rel);
      if (t) {
        const bias = BigInt(t.pos) - rel.addend;
        return {
          identity: `str:${JSON.stringify(t.text)}-${bias}`,
          describe: `string ${JSON.stringify(t.text)}`,
        };
      }
      return {
        identity: `sec:${sec.name}+${rel.addend}`,
        describe: `${sec.name}+0x${rel.addend.toString(16)}`,
      };
    }
    const pc = isPcRelative(rel.type) ? 4n : 0n;
    const covering = map.covering(sec, Number(rel.addend + pc));
    if (covering) {
      const within = rel.addend - covering.value;
      const name = canon(covering);
      const shown = within + pc;
      return {
        identity: `sym:${name}${within >= 0n ? '+' : ''}${within}`,
        describe: `${name}${shown === 0n ? '' : `${shown > 0n ? '+' : ''}${shown}`}`,
        symbol: covering,
        symbolAddend: within,
      };
    }
    return {
      identity: `sec:${sec.name}+${rel.addend}`,
      describe: `${sec.name}+0x${rel.addend.toString(16)}`,
    };
  }
  const offset = rel.addend + (isPcRelative(rel.type) ? 4n : 0n);
  const plus = offset === 0n ? '' : `${offset > 0n ? '+' : ''}${offset}`;
  if (sym.section) {
    const name = canon(sym);
    return {
      identity: `sym:${name}+${rel.addend}`,
      describe: `${name}${plus}`,
      symbol: sym,
      symbolAddend: rel.addend,
    };
  }
  return { identity: `ext:${sym.name}+${rel.addend}`, describe: `${sym.name}${plus}` };
}

export interface Side {
  obj: ElfObject;
  map: SymbolMap;
  symbol: ElfSymbol;
  canon: CanonicalName;
}

export interface Difference {
  same: boolean;
  reason?: string;
}

function extent(side: Side): { section: ElfSection; start: number; end: number } {
  const section = side.symbol.section!;
  const start = Number(side.symbol.value);
  const size = side.symbol.size || section.size - start;
  return { section, start, end: start + size };
}

/** Compare one symbol's contents (code or data) in the original and the patched object. */
export function compareSymbol(o: Side, p: Side): Difference {
  const oe = extent(o);
  const pe = extent(p);
  const oRels = relocationsIn(o.obj, oe.section, oe.start, oe.end);
  const pRels = relocationsIn(p.obj, pe.section, pe.start, pe.end);
  // references first: they make the best reasons
  const n = Math.min(oRels.length, pRels.length);
  for (let i = 0; i < n; i++) {
    const a = oRels[i]!;
    const b = pRels[i]!;
    const ta = resolveTarget(a, o.map, o.canon);
    const tb = resolveTarget(b, p.map, p.canon);
    if (ta.identity !== tb.identity) {
      if (ta.describe === tb.describe) {
        ta.describe += ` (${ta.identity.split(':')[0] === 'ext' ? 'external' : 'defined in the file'})`;
        tb.describe += ` (${tb.identity.split(':')[0] === 'ext' ? 'external' : 'defined in the file'})`;
      }
      return {
        same: false,
        reason: `reference at +0x${(Number(b.offset) - pe.start).toString(16)} changed: ${ta.describe} → ${tb.describe}`,
      };
    }
    if (Number(a.offset) - oe.start !== Number(b.offset) - pe.start || a.type !== b.type) break;
  }
  const oSize = oe.end - oe.start;
  const pSize = pe.end - pe.start;
  if (oSize !== pSize) return { same: false, reason: `size changed from ${oSize} to ${pSize} bytes` };
  if (oRels.length !== pRels.length)
    return { same: false, reason: `${pRels.length} references instead of ${oRels.length}` };
  for (let i = 0; i < n; i++) {
    const a = oRels[i]!;
    const b = pRels[i]!;
    if (Number(a.offset) - oe.start !== Number(b.offset) - pe.start || a.type !== b.type)
      return {
        same: false,
        reason: `code differs at +0x${(Number(b.offset) - pe.start).toString(16)} (a reference moved)`,
      };
  }
  if (oe.section.type === SHT.NOBITS || pe.section.type === SHT.NOBITS) {
    // NOBITS: nothing but the size to compare
    return {
      same: oe.section.type === pe.section.type,
      ...(oe.section.type === pe.section.type ? {} : { reason: 'moved between initialized and zeroed data' }),
    };
  }
  const ob = oe.section.data.subarray(oe.start, oe.end);
  const pb = pe.section.data.subarray(pe.start, pe.end);
  const masked = new Uint8Array(oSize);
  for (const r of oRels) {
    const at = Number(r.offset) - oe.start;
    masked.fill(1, at, Math.min(oSize, at + relocationWidth(r.type)));
  }
  for (let i = 0; i < oSize; i++) {
    if (masked[i]) continue;
    if (ob[i] !== pb[i])
      return {
        same: false,
        reason: `${o.symbol.type === STT.FUNC ? 'instructions' : 'contents'} differ at +0x${i.toString(16)}`,
      };
  }
  return { same: true };
}

const sectionSymbols = new WeakMap<ElfSection, ElfSymbol>();
/** A stand-in section symbol for resolving a label as section + offset. */
function sectionSymbolOf(sym: ElfSymbol): ElfSymbol {
  const sec = sym.section!;
  let s = sectionSymbols.get(sec);
  if (!s) {
    s = {
      name: '',
      value: 0n,
      size: 0,
      bind: STB.LOCAL,
      type: STT.SECTION,
      visibility: 0,
      other: 0,
      section: sec,
      shndx: sym.shndx,
    };
    sectionSymbols.set(sec, s);
  }
  return s;
}

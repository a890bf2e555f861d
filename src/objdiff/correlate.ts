/*
 * Correlation: which symbol of the patched object is which symbol of the original.
 *
 * Most symbols keep their name across a rebuild, but the compiler makes names of its own: clones
 * (`foo.isra.0`, `foo.constprop.1`, `foo.part.0`), split-off cold paths (`foo.cold`), numbered static
 * locals (`count.3`, `__func__.12`). Their numbers depend on everything else in the file, so a patch
 * that adds one static local shifts every later number. We correlate in three passes:
 *   1. the exact name, when both sides have it and it is not numbered;
 *   2. numbered static locals by the functions that use them (`n.0` of `counter` is `n.1` of
 *      `counter`), then the same base name and the same kinds of suffix, matched by position among
 *      the symbols with that key;
 *   3. the same base name with different suffix kinds (`foo.isra.0` became `foo.constprop.0`), only
 *      when that leaves exactly one candidate on each side;
 *   1b. pr_debug descriptors (`__UNIQUE_ID_ddebugN`, descriptors.ts) by their function and message;
 *   4. a function prefix (`__pfx_foo`, prefix.ts) is the prefix of its function's twin: the two are one
 *      unit, never correlated on their own.
 * Only defined functions and data objects take part; undefined symbols are compared by name.
 */
import { STT } from '../elf/constants.js';
import type { ElfObject, ElfSection, ElfSymbol } from '../elf/model.js';
import { correlateDescriptors } from './descriptors.js';
import { prefixesOf } from './prefix.js';

const SUFFIX = /\.(isra|constprop|part|cold|localalias|lto_priv|llvm)(\.\d+)?|\.\d+/g;

export interface SymbolKey {
  /** the name without compiler suffixes: `foo` for `foo.isra.0`, `count` for `count.3` */
  base: string;
  /** the suffix kinds in order, without numbers: `isra`, `constprop.isra`, `N` for a bare number */
  kinds: string;
}

export function symbolKey(name: string): SymbolKey {
  // BTF_ID() names end in a file-wide counter: `__BTF_ID__struct__foo__313208`
  const btf = /^(__BTF_ID__.*)__\d+$/.exec(name);
  if (btf) return { base: btf[1]!, kinds: 'N' };
  const kinds: string[] = [];
  const base = name.replace(SUFFIX, (_m, kind: string | undefined) => {
    kinds.push(kind ?? 'N');
    return '';
  });
  return { base: base === '' ? name : base, kinds: kinds.join('.') };
}

/**
 * The symbols that take part: defined functions and data objects, and named labels defined in assembly
 * (`btf_sock_ids` of BTF_ID_LIST_GLOBAL is NOTYPE); not the assembler's own `.L` labels.
 */
export function correlatable(obj: ElfObject): ElfSymbol[] {
  return obj.symbols.filter(
    (s) =>
      s.section !== null &&
      (s.type === STT.FUNC || s.type === STT.OBJECT || (s.type === STT.NOTYPE && !s.name.startsWith('.L'))) &&
      s.name !== '',
  );
}

export interface Correlation {
  /** patched symbol → original symbol */
  toOriginal: Map<ElfSymbol, ElfSymbol>;
  /** original symbol → patched symbol */
  toPatched: Map<ElfSymbol, ElfSymbol>;
}

export function correlate(original: ElfObject, patched: ElfObject): Correlation {
  const toOriginal = new Map<ElfSymbol, ElfSymbol>();
  const toPatched = new Map<ElfSymbol, ElfSymbol>();
  const link = (p: ElfSymbol, o: ElfSymbol) => {
    toOriginal.set(p, o);
    toPatched.set(o, p);
  };
  const oPrefix = prefixesOf(original.symbols);
  const pPrefix = prefixesOf(patched.symbols);
  const oPrefixes = new Set(oPrefix.values());
  const pPrefixes = new Set(pPrefix.values());
  const orig = correlatable(original).filter((s) => !oPrefixes.has(s));
  const pat = correlatable(patched).filter((s) => !pPrefixes.has(s));

  // 1. exact, unnumbered names (a name can occur twice among locals: then leave it to pass 2)
  const unique = (list: ElfSymbol[]) => {
    const m = new Map<string, ElfSymbol | null>();
    for (const s of list) m.set(`${s.type}:${s.name}`, m.has(`${s.type}:${s.name}`) ? null : s);
    return m;
  };
  const origByName = unique(orig);
  for (const [k, p] of unique(pat)) {
    const o = origByName.get(k);
    if (!p || !o || /\.\d+$/.test(p.name)) continue;
    link(p, o);
  }

  // 1b. pr_debug descriptors by what they say (descriptors.ts)
  correlateDescriptors(original, patched, orig, pat, link);

  // 2a. numbered static locals (`n.0`, `__already_done.3`): by the functions that use them
  const oUsers = dataUsers(original);
  const pUsers = dataUsers(patched);
  const byUse = (list: ElfSymbol[], users: Map<ElfSymbol, string>, taken: Map<ElfSymbol, ElfSymbol>) => {
    const m = new Map<string, ElfSymbol[]>();
    for (const s of list) {
      if (taken.has(s) || s.type !== STT.OBJECT || !users.has(s)) continue;
      const k = symbolKey(s.name);
      const key = `${k.base}|${k.kinds}|${users.get(s)}`;
      m.set(key, [...(m.get(key) ?? []), s]);
    }
    return m;
  };
  const origUsed = byUse(orig, oUsers, toPatched);
  for (const [key, ps] of byUse(pat, pUsers, toOriginal)) {
    const os = origUsed.get(key) ?? [];
    if (ps.length === 1 && os.length === 1) link(ps[0]!, os[0]!);
  }

  // 2b. same base and suffix kinds, by position
  const byKey = (list: ElfSymbol[], taken: Map<ElfSymbol, ElfSymbol>) => {
    const m = new Map<string, ElfSymbol[]>();
    for (const s of list) {
      if (taken.has(s)) continue;
      const k = symbolKey(s.name);
      const key = `${s.type}:${k.base}|${k.kinds}`;
      m.set(key, [...(m.get(key) ?? []), s]);
    }
    return m;
  };
  const origKeyed = byKey(orig, toPatched);
  for (const [key, ps] of byKey(pat, toOriginal)) {
    const os = origKeyed.get(key) ?? [];
    for (let i = 0; i < Math.min(ps.length, os.length); i++) link(ps[i]!, os[i]!);
  }

  // 3. same base, different kinds, one candidate each
  const byBase = (list: ElfSymbol[], taken: Map<ElfSymbol, ElfSymbol>) => {
    const m = new Map<string, ElfSymbol[]>();
    for (const s of list) {
      if (taken.has(s)) continue;
      const key = `${s.type}:${symbolKey(s.name).base}`;
      m.set(key, [...(m.get(key) ?? []), s]);
    }
    return m;
  };
  const origBased = byBase(orig, toPatched);
  for (const [key, ps] of byBase(pat, toOriginal)) {
    const os = origBased.get(key) ?? [];
    if (ps.length === 1 && os.length === 1) link(ps[0]!, os[0]!);
  }

  // 4. prefixes follow their functions
  for (const [pf, pp] of pPrefix) {
    const of = toOriginal.get(pf);
    const op = of && oPrefix.get(of);
    if (op) link(pp, op);
  }
  return { toOriginal, toPatched };
}

/**
 * For each data object: the (base) names of the functions that reference it, sorted and joined. A
 * static local belongs to the function it is declared in, which is the best name it has.
 */
function dataUsers(obj: ElfObject): Map<ElfSymbol, string> {
  const objectsIn = new Map<ElfSection, ElfSymbol[]>();
  const funcIn = new Map<ElfSection, ElfSymbol[]>();
  for (const s of obj.symbols) {
    if (!s.section) continue;
    const m = s.type === STT.OBJECT ? objectsIn : s.type === STT.FUNC ? funcIn : undefined;
    if (m) m.set(s.section, [...(m.get(s.section) ?? []), s]);
  }
  const users = new Map<ElfSymbol, Set<string>>();
  for (const rela of obj.sections) {
    const target = rela.infoSection;
    if (!rela.relocations || !target || !funcIn.has(target)) continue;
    for (const r of rela.relocations) {
      const off = Number(r.offset);
      const fn = funcIn.get(target)!.find((f) => off >= Number(f.value) && off < Number(f.value) + f.size);
      const sym = r.symbol;
      if (!fn || !sym?.section) continue;
      let data: ElfSymbol | undefined;
      if (sym.type === STT.OBJECT) data = sym;
      else if (sym.type === STT.SECTION) {
        const at = Number(r.addend);
        data = objectsIn.get(sym.section)?.find((d) => {
          const v = Number(d.value);
          return (
            (at >= v && at < v + Math.max(1, d.size)) || (at + 4 >= v && at + 4 < v + Math.max(1, d.size))
          );
        });
      }
      if (!data) continue;
      const set = users.get(data) ?? new Set<string>();
      set.add(symbolKey(fn.name).base);
      users.set(data, set);
    }
  }
  return new Map([...users].map(([k, v]) => [k, [...v].sort().join(',')]));
}

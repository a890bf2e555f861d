/*
 * Descriptor tables: sections of fixed-size objects that carried code refers to by address and that the
 * module loader registers from the livepatch module's own copy of the section.
 *
 * A new `pr_debug()` defines a `struct _ddebug` in `__dyndbg` (its format, function, file, line, flags
 * and the static key its call site branches on). The running kernel has no such descriptor, but it
 * needs none: the module loader hands the livepatch module's `__dyndbg` to dynamic debug
 * (`/proc/dynamic_debug/control` lists it under the livepatch module's name) and sets up the
 * `__jump_table` entries keyed on its static key. So a new descriptor is carried as an object of the
 * diff object's own `__dyndbg`, packed with the other carried descriptors (the loader counts the
 * section's size over `sizeof(struct _ddebug)`), unlike the tables of special-tables.ts, whose entries
 * point at code and are kept for the carried functions they describe.
 *
 * Other tables of objects stay refused by OBJDIFF-NEW-SPECIAL-OBJECT when a new one is used: a new
 * tracepoint (`__tracepoints`: its users elsewhere in the kernel would never see it), a new
 * dynamic-debug class map (`__dyndbg_classes`: it names classes of the module it is defined in).
 */
import { STT } from '../elf/constants.js';
import type { ElfObject, ElfSection, ElfSymbol } from '../elf/model.js';

/** Sections whose new objects are carried in the diff object's own copy of the section. */
const DESCRIPTOR_TABLES: ReadonlySet<string> = new Set(['__dyndbg']);

export function isDescriptorTable(s: ElfSection): boolean {
  return DESCRIPTOR_TABLES.has(s.name);
}

/**
 * Whether `sym` is one whole descriptor of its table: an object of the table's stride (the symbol's
 * size, which divides the section) starting on a stride boundary. Anything else cannot be packed.
 */
export function isWholeDescriptor(sym: ElfSymbol): boolean {
  const sec = sym.section;
  if (!sec || sym.type !== STT.OBJECT || sym.size <= 0) return false;
  return sec.size % sym.size === 0 && Number(sym.value) % sym.size === 0;
}

/** The text at a relocation's target (a string of `.rodata.str*`, `__func__.N`), up to its NUL. */
function textAt(section: ElfSection, at: number): string {
  const end = section.data.indexOf(0, at);
  return Buffer.from(section.data.subarray(at, end < 0 ? Math.min(section.size, at + 256) : end)).toString(
    'latin1',
  );
}

/** `struct _ddebug`'s `filename` field (after `modname` and `function`): the unit's own path, left out. */
const FILENAME_FIELD = 16n;

/**
 * What a descriptor says, for correlation: the texts its pointers lead to (module, function, format),
 * by field. A pr_debug's `__UNIQUE_ID_ddebugN` number shifts with every descriptor added before it,
 * and position says nothing when a function gains one: its message does. The file name is the unit's
 * in both (or the path it was compiled under), so it says nothing either.
 */
export function descriptorIdentity(obj: ElfObject, sym: ElfSymbol): string | undefined {
  const sec = sym.section;
  if (!sec || !isDescriptorTable(sec) || !isWholeDescriptor(sym)) return undefined;
  const start = sym.value;
  const end = start + BigInt(sym.size);
  const texts: string[] = [];
  for (const rela of obj.relocationsFor(sec))
    for (const r of rela.relocations ?? []) {
      if (r.offset < start || r.offset >= end || !r.symbol?.section) continue;
      if (r.offset - start === FILENAME_FIELD) continue;
      const base = r.symbol.type === STT.SECTION ? 0n : r.symbol.value;
      texts.push(`${r.offset - start}:${textAt(r.symbol.section, Number(base + r.addend))}`);
    }
  return texts.sort().join('\u0000');
}

/** Descriptors of both sides with the same identity, one on each side: the same pr_debug site. */
export function correlateDescriptors(
  original: ElfObject,
  patched: ElfObject,
  orig: readonly ElfSymbol[],
  pat: readonly ElfSymbol[],
  link: (p: ElfSymbol, o: ElfSymbol) => void,
): void {
  const byIdentity = (obj: ElfObject, list: readonly ElfSymbol[]) => {
    const m = new Map<string, ElfSymbol[]>();
    for (const s of list) {
      const id = descriptorIdentity(obj, s);
      if (id !== undefined) m.set(id, [...(m.get(id) ?? []), s]);
    }
    return m;
  };
  const origById = byIdentity(original, orig);
  for (const [id, ps] of byIdentity(patched, pat)) {
    const os = origById.get(id) ?? [];
    if (ps.length === 1 && os.length === 1) link(ps[0]!, os[0]!);
  }
}

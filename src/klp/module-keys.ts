/*
 * Keys of the early tables in a diff object: which module symbols its jump labels, static calls and
 * alternatives are keyed on, and the inert tracepoint.
 *
 * The module loader sets up a livepatch's `__jump_table`, `.static_call_sites` and alternatives when it
 * loads, before the klp relocations against a module's symbols can be resolved (KLP-MODULE-KEY). A
 * tracepoint of a module is the one such key a patch can do without: `trace_foo()` is a static branch
 * on `__tracepoint_foo.key` (compiled as a no-op, the event off) guarding a static call through
 * `__SCK__tp_func_foo`. Leaving both entries out of the diff object keeps the no-op for good: the
 * patched copy never emits the event, and nothing is keyed on the module. The no-op is checked in the
 * carried bytes; a site that is not one (a likely branch, a jump) is refused like any other key.
 */
import type { EarlyTableReference } from '../check/module/module-key.js';
import { EARLY_TABLES, earlyKeyKind } from '../check/module/module-key.js';
import { STT } from '../elf/constants.js';
import type { ElfObject, ElfRelocation, ElfSection } from '../elf/model.js';
import { parseKlpSymbolName } from './relocations.js';

/** One early table reference and where it is: the table and its entry (absent for alternatives' code). */
export interface EarlyEntry extends EarlyTableReference {
  section: ElfSection;
  /** index of the entry in its table, for the split tables */
  entry?: number;
}

/** x86 no-ops a jump label site is compiled to: `xchg %ax,%ax` (2 bytes), `nopl 0x0(%rax,%rax,1)` (5) */
const NOPS = [
  [0x66, 0x90],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
];

/** The function symbol of `obj` covering `offset` in `text`, by name. */
function functionAt(obj: ElfObject, text: ElfSection, offset: number): string | undefined {
  const f = obj.symbols.find(
    (s) =>
      s.section === text &&
      s.type === STT.FUNC &&
      !s.name.startsWith('__pfx_') &&
      Number(s.value) <= offset &&
      offset < Number(s.value) + s.size,
  );
  return f?.name;
}

/** The code location a table field's PC-relative relocation points at (a carried text, an offset). */
function codeAt(rel: ElfRelocation | undefined): { text: ElfSection; offset: number } | undefined {
  const sym = rel?.symbol;
  if (!sym?.section) return undefined;
  return { text: sym.section, offset: Number(sym.value + rel!.addend) };
}

function isNop(text: ElfSection, offset: number): boolean {
  return NOPS.some((n) => n.every((b, i) => text.data[offset + i] === b));
}

/** Why a tracepoint's jump entry cannot be left as compiled, or undefined when it can. */
function notInert(
  key: ElfRelocation,
  code: { text: ElfSection; offset: number } | undefined,
): string | undefined {
  if (key.addend & 1n) return 'its static branch is compiled as taken';
  if (!code) return 'its site is not in carried code';
  if (!isNop(code.text, code.offset))
    return `the site at ${code.text.name}+0x${code.offset.toString(16)} is not a no-op`;
  return undefined;
}

/** Every reference of the early tables to a klp symbol, with its kind, entry and function. */
export function earlyTableReferences(
  obj: ElfObject,
  entrySizes: Readonly<Record<string, number>>,
): EarlyEntry[] {
  const out: EarlyEntry[] = [];
  for (const table of EARLY_TABLES) {
    const sec = obj.section(table);
    if (!sec) continue;
    const rels = obj.relocationsFor(sec).flatMap((r) => r.relocations ?? []);
    const size = entrySizes[table];
    for (const r of rels) {
      const k = r.symbol ? parseKlpSymbolName(r.symbol.name) : undefined;
      if (!k) continue;
      const entry = size ? Math.floor(Number(r.offset) / size) : undefined;
      // the entry's first field is its code address (jump_entry.code, static_call_site.addr)
      const code =
        entry === undefined ? codeAt(r) : codeAt(rels.find((x) => Number(x.offset) === entry * size!));
      const kind = earlyKeyKind(table, k.name);
      const fn = code ? functionAt(obj, code.text, code.offset) : undefined;
      const why = kind.kind === 'tracepoint' && table === '__jump_table' ? notInert(r, code) : undefined;
      out.push({
        table,
        object: k.object,
        name: k.name,
        ...kind,
        section: sec,
        ...(entry === undefined ? {} : { entry }),
        ...(fn ? { function: fn } : {}),
        ...(why ? { notInert: why } : {}),
      });
    }
  }
  return out;
}

/** Tracepoint entries keyed on a module that can be left out: each jump entry with a no-op site, and the tracepoint's static call sites. */
export function inertTracepointEntries(refs: readonly EarlyEntry[]): EarlyEntry[] {
  const module = refs.filter(
    (r) => r.object !== 'vmlinux' && r.kind === 'tracepoint' && r.entry !== undefined,
  );
  const blocked = new Set(module.filter((r) => r.notInert).map((r) => `${r.object}\0${r.tracepoint}`));
  return module.filter((r) => !blocked.has(`${r.object}\0${r.tracepoint}`));
}

/** Remove entries of a split table from a diff object: its bytes and their relocations, the rest packed. */
export function dropTableEntries(
  obj: ElfObject,
  table: ElfSection,
  size: number,
  drop: ReadonlySet<number>,
): void {
  const count = table.data.length / size;
  const newIndex: number[] = [];
  const data = new Uint8Array((count - [...drop].filter((i) => i < count).length) * size);
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (drop.has(i)) continue;
    data.set(table.data.subarray(i * size, (i + 1) * size), n * size);
    newIndex[i] = n++;
  }
  table.data = data;
  table.size = data.length;
  for (const rela of obj.relocationsFor(table)) {
    const kept: ElfRelocation[] = [];
    for (const r of rela.relocations ?? []) {
      const i = Math.floor(Number(r.offset) / size);
      if (drop.has(i)) continue;
      kept.push({ ...r, offset: BigInt(newIndex[i]! * size) + (r.offset % BigInt(size)) });
    }
    rela.relocations = kept;
    rela.size = kept.length * rela.entsize;
  }
}

/**
 * Leave the module tracepoints of a diff object inert (unless `strict`): drops their entries and returns
 * them, with the references left for KLP-MODULE-KEY.
 */
export function leaveTracepointsInert(
  obj: ElfObject,
  entrySizes: Readonly<Record<string, number>>,
  strict: boolean,
): { inert: EarlyEntry[]; remaining: EarlyEntry[] } {
  const refs = earlyTableReferences(obj, entrySizes);
  const inert = strict ? [] : inertTracepointEntries(refs);
  const bySection = new Map<ElfSection, Set<number>>();
  for (const r of inert) bySection.set(r.section, (bySection.get(r.section) ?? new Set()).add(r.entry!));
  for (const [sec, drop] of bySection) {
    dropTableEntries(obj, sec, entrySizes[sec.name]!, drop);
    if (sec.data.length === 0) obj.removeSections([sec]);
  }
  const gone = new Set(inert);
  return { inert, remaining: refs.filter((r) => !gone.has(r)) };
}

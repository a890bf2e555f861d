/*
 * klp relocations: how a livepatch module refers to what the running kernel does not export.
 *
 * The module loader resolves an undefined symbol only against exported symbols (Module.symvers). A
 * patched function also uses static functions and variables of its file and non-exported globals; the
 * livepatch core resolves those itself, through kallsyms, when the patch (or the patched module)
 * loads. The module says so in its ELF (Documentation/livepatch/module-elf-format.rst):
 *   - the symbol is named `.klp.sym.<object>.<name>,<sympos>` and has st_shndx = SHN_LIVEPATCH;
 *     <object> is `vmlinux` or a module name, <sympos> the position among same-named symbols of that
 *     object as the kernel counts them (0: the name is unique);
 *   - its relocations live in a section `.klp.rela.<object>.<section>` (SHT_RELA, flags
 *     SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH, sh_info = the section they patch), which the
 *     ordinary loader skips and kernel/livepatch/core.c klp_apply_section_relocs() applies once
 *     <object> is in memory.
 * We link the module with such symbols left undefined under their final names, then move their
 * relocations into klp sections here. All relocations of one klp section must name symbols of one
 * object (the kernel refuses a vmlinux symbol in a module's section).
 */
import { fail } from '../diagnostic.js';
import { SHF, SHN, SHT, STB } from '../elf/constants.js';
import { createSection, type ElfObject, type ElfRelocation, type ElfSection } from '../elf/model.js';

export interface KlpSymbol {
  /** `vmlinux` or a module name (no dots: the kernel parses it with %55[^.]) */
  object: string;
  name: string;
  sympos: number;
}

/** MODULE_NAME_LEN - 1 and KSYM_NAME_LEN - 1, the kernel's sscanf field widths. */
const MAX_OBJECT = 55;
const MAX_NAME = 511;

export function klpSymbolName(k: KlpSymbol): string {
  if (!/^[^.]+$/.test(k.object) || k.object.length > MAX_OBJECT)
    fail('KLP-BAD-OBJECT-NAME', `\`${k.object}\` cannot name a klp object`, {
      why: 'the livepatch core reads the object name up to the first dot, at most 55 characters',
    });
  if (k.name.includes(',') || k.name.length > MAX_NAME)
    fail('KLP-BAD-SYMBOL-NAME', `\`${k.name}\` cannot be a klp symbol name`, {
      why: 'the livepatch core reads the symbol name up to the first comma, at most 511 characters',
    });
  if (!Number.isInteger(k.sympos) || k.sympos < 0)
    fail('KLP-BAD-SYMPOS', `sympos ${k.sympos} of \`${k.name}\` is not a count`);
  return `.klp.sym.${k.object}.${k.name},${k.sympos}`;
}

export function parseKlpSymbolName(s: string): KlpSymbol | undefined {
  const m = /^\.klp\.sym\.([^.]{1,55})\.([^,]{1,511}),(\d+)$/.exec(s);
  return m ? { object: m[1]!, name: m[2]!, sympos: Number(m[3]) } : undefined;
}

export interface KlpConversion {
  /** names of the `.klp.rela.*` sections created, with their relocation counts */
  sections: { name: string; count: number }[];
  /** the `.klp.sym.*` symbols marked SHN_LIVEPATCH */
  symbols: string[];
}

/**
 * Turn the relocations against undefined `.klp.sym.*` symbols of a linked module into klp relocation
 * sections, and mark those symbols SHN_LIVEPATCH. Changes `ko` in place.
 */
export function convertKlpRelocations(
  ko: ElfObject,
  /**
   * Which object's load applies a relocation (the `<object>` of `.klp.rela.<object>.<section>`): by
   * default the symbol's own object. A module's code may also use another module's exports: those
   * relocations belong to the module whose code they patch (it depends on the exporter, so both are
   * loaded together). vmlinux symbols always go to vmlinux sections, as the kernel requires.
   */
  sectionObject: (target: ElfSection, sym: KlpSymbol) => string = (_t, sym) => sym.object,
): KlpConversion {
  const symtab = ko.symtab;
  if (!symtab?.symbols) fail('KLP-NO-SYMTAB', `${ko.file ?? 'module'} has no symbol table`);
  const klpSyms = new Map<string, KlpSymbol>();
  for (const sym of symtab.symbols) {
    const k = parseKlpSymbolName(sym.name);
    if (!k) continue;
    if (sym.section !== null || (sym.shndx !== SHN.UNDEF && sym.shndx !== SHN.LIVEPATCH))
      fail('KLP-SYMBOL-DEFINED', `klp symbol ${sym.name} is defined in the module`, {
        why: 'a .klp.sym symbol stands for something in the running kernel; the module must not define it',
      });
    sym.section = null;
    sym.shndx = SHN.LIVEPATCH;
    sym.bind = STB.GLOBAL;
    klpSyms.set(sym.name, k);
  }
  const created = new Map<string, ElfSection>();
  const emptied: ElfSection[] = [];
  for (const rela of [...ko.sections]) {
    if (rela.type !== SHT.RELA || !rela.relocations || !rela.infoSection) continue;
    if ((rela.flags & SHF.RELA_LIVEPATCH) !== 0) continue;
    const keep: ElfRelocation[] = [];
    for (const r of rela.relocations) {
      const k = r.symbol ? klpSyms.get(r.symbol.name) : undefined;
      if (!k || !r.symbol || r.symbol.shndx !== SHN.LIVEPATCH) {
        keep.push(r);
        continue;
      }
      const target = rela.infoSection;
      if ((target.flags & SHF.ALLOC) === 0) continue; // debug info about klp symbols: nothing to resolve at run time
      const name = `.klp.rela.${sectionObject(target, k)}.${target.name}`;
      let sec = created.get(name);
      if (!sec) {
        sec = createSection({
          name,
          type: SHT.RELA,
          flags: SHF.ALLOC | SHF.INFO_LINK | SHF.RELA_LIVEPATCH,
          link: symtab,
          infoSection: target,
          addralign: 8,
          entsize: 24,
          relocations: [],
        });
        created.set(name, sec);
      }
      sec.relocations!.push(r);
    }
    rela.relocations = keep;
    if (keep.length === 0) emptied.push(rela);
  }
  ko.removeSections(emptied);
  // klp sections go before the symbol table, like the linker's own relocation sections
  const at = ko.sections.indexOf(symtab);
  ko.sections.splice(at, 0, ...created.values());
  for (const s of created.values()) s.size = s.relocations!.length * 24;
  return {
    sections: [...created].map(([name, s]) => ({ name, count: s.relocations!.length })),
    symbols: [...klpSyms.keys()],
  };
}

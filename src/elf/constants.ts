/*
 * ELF64 constants for x86-64 and their names.
 *
 * The numbers come from the System V gABI, the x86-64 psABI and the kernel's livepatch ELF format
 * (Documentation/livepatch/module-elf-format.rst: SHF_RELA_LIVEPATCH, SHN_LIVEPATCH). Names are
 * spelled the way binutils' `readelf -W` prints them, so our diagnostics and readelf line up.
 */

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const EM_X86_64 = 62;

export const EHDR_SIZE = 64;
export const SHDR_SIZE = 64;
export const PHDR_SIZE = 56;
export const SYM_SIZE = 24;
export const RELA_SIZE = 24;
export const REL_SIZE = 16;

export const ET = { NONE: 0, REL: 1, EXEC: 2, DYN: 3, CORE: 4 } as const;

export const SHT = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  HASH: 5,
  DYNAMIC: 6,
  NOTE: 7,
  NOBITS: 8,
  REL: 9,
  SHLIB: 10,
  DYNSYM: 11,
  INIT_ARRAY: 14,
  FINI_ARRAY: 15,
  PREINIT_ARRAY: 16,
  GROUP: 17,
  SYMTAB_SHNDX: 18,
  RELR: 19,
  GNU_ATTRIBUTES: 0x6ffffff5,
  GNU_HASH: 0x6ffffff6,
  GNU_LIBLIST: 0x6ffffff7,
  GNU_VERDEF: 0x6ffffffd,
  GNU_VERNEED: 0x6ffffffe,
  GNU_VERSYM: 0x6fffffff,
  X86_64_UNWIND: 0x70000001,
} as const;

const SHT_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'PROGBITS',
  2: 'SYMTAB',
  3: 'STRTAB',
  4: 'RELA',
  5: 'HASH',
  6: 'DYNAMIC',
  7: 'NOTE',
  8: 'NOBITS',
  9: 'REL',
  10: 'SHLIB',
  11: 'DYNSYM',
  14: 'INIT_ARRAY',
  15: 'FINI_ARRAY',
  16: 'PREINIT_ARRAY',
  17: 'GROUP',
  18: 'SYMTAB SECTION INDICES',
  19: 'RELR',
  1879048181: 'GNU_ATTRIBUTES',
  1879048182: 'GNU_HASH',
  1879048183: 'GNU_LIBLIST',
  1879048189: 'VERDEF',
  1879048190: 'VERNEED',
  1879048191: 'VERSYM',
  1879048193: 'X86_64_UNWIND',
};

export function sectionTypeName(type: number): string {
  const n = SHT_NAMES[type];
  if (n) return n;
  if (type >= 0x60000000 && type <= 0x6fffffff) return `LOOS+0x${(type - 0x60000000).toString(16)}`;
  if (type >= 0x70000000 && type <= 0x7fffffff) return `LOPROC+0x${(type - 0x70000000).toString(16)}`;
  if (type >= 0x80000000 && type <= 0xffffffff) return `LOUSER+0x${(type - 0x80000000).toString(16)}`;
  return `<unknown>: ${type.toString(16)}`;
}

export const SHF = {
  WRITE: 0x1,
  ALLOC: 0x2,
  EXECINSTR: 0x4,
  MERGE: 0x10,
  STRINGS: 0x20,
  INFO_LINK: 0x40,
  LINK_ORDER: 0x80,
  OS_NONCONFORMING: 0x100,
  GROUP: 0x200,
  TLS: 0x400,
  COMPRESSED: 0x800,
  /** the kernel's marker for `.klp.rela.*` sections (include/uapi/linux/elf.h) */
  RELA_LIVEPATCH: 0x00100000,
  GNU_RETAIN: 0x00200000,
  X86_64_LARGE: 0x10000000,
  EXCLUDE: 0x80000000,
} as const;

/** readelf's one-letter flag key, in readelf's order. */
const SHF_LETTERS: [number, string][] = [
  [SHF.WRITE, 'W'],
  [SHF.ALLOC, 'A'],
  [SHF.EXECINSTR, 'X'],
  [SHF.MERGE, 'M'],
  [SHF.STRINGS, 'S'],
  [SHF.INFO_LINK, 'I'],
  [SHF.LINK_ORDER, 'L'],
  [SHF.OS_NONCONFORMING, 'O'],
  [SHF.GROUP, 'G'],
  [SHF.TLS, 'T'],
  [SHF.COMPRESSED, 'C'],
  [SHF.X86_64_LARGE, 'l'],
  [SHF.EXCLUDE, 'E'],
  [SHF.GNU_RETAIN, 'R'],
];

/** Flags as readelf -W prints them (`AX`, `WA`, `AMS`, `o` for OS-specific bits such as SHF_RELA_LIVEPATCH). */
export function sectionFlagLetters(flags: number): string {
  let s = '';
  let rest = flags;
  for (const [bit, letter] of SHF_LETTERS) {
    if (flags & bit) {
      s += letter;
      rest -= bit;
    }
  }
  if (rest & 0x0ff00000) {
    s += 'o';
    rest &= ~0x0ff00000;
  }
  if (rest !== 0) s += 'x';
  return s;
}

export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2, GNU_UNIQUE: 10 } as const;
export const STT = {
  NOTYPE: 0,
  OBJECT: 1,
  FUNC: 2,
  SECTION: 3,
  FILE: 4,
  COMMON: 5,
  TLS: 6,
  GNU_IFUNC: 10,
} as const;
export const STV = { DEFAULT: 0, INTERNAL: 1, HIDDEN: 2, PROTECTED: 3 } as const;

export function symbolBindName(bind: number): string {
  return (
    ({ 0: 'LOCAL', 1: 'GLOBAL', 2: 'WEAK', 10: 'UNIQUE' } as Record<number, string>)[bind] ??
    `<unknown>: ${bind}`
  );
}
export function symbolTypeName(type: number): string {
  return (
    (
      {
        0: 'NOTYPE',
        1: 'OBJECT',
        2: 'FUNC',
        3: 'SECTION',
        4: 'FILE',
        5: 'COMMON',
        6: 'TLS',
        10: 'IFUNC',
      } as Record<number, string>
    )[type] ?? `<unknown>: ${type}`
  );
}
export function symbolVisibilityName(vis: number): string {
  return ['DEFAULT', 'INTERNAL', 'HIDDEN', 'PROTECTED'][vis & 3] ?? 'DEFAULT';
}

export const SHN = {
  UNDEF: 0,
  LORESERVE: 0xff00,
  /** the kernel's marker for symbols resolved by the livepatch core at load time */
  LIVEPATCH: 0xff20,
  ABS: 0xfff1,
  COMMON: 0xfff2,
  XINDEX: 0xffff,
} as const;

/** A symbol's special section index as readelf prints it in the Ndx column (SHN_LIVEPATCH: `OS [0xff20]`). */
export function sectionIndexName(shndx: number): string {
  if (shndx === SHN.UNDEF) return 'UND';
  if (shndx === SHN.ABS) return 'ABS';
  if (shndx === SHN.COMMON) return 'COM';
  if (shndx >= 0xff00 && shndx <= 0xff1f) return `PRC[0x${shndx.toString(16)}]`;
  if (shndx >= 0xff20 && shndx <= 0xff3f) return `OS [0x${shndx.toString(16)}]`; // SHN_LIVEPATCH is OS [0xff20]
  if (shndx >= 0xff00 && shndx <= 0xffff) return `RSV[0x${shndx.toString(16)}]`;
  return String(shndx);
}

export const GRP_COMDAT = 1;

export const NT_GNU_BUILD_ID = 3;

export const PT_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'LOAD',
  2: 'DYNAMIC',
  3: 'INTERP',
  4: 'NOTE',
  5: 'SHLIB',
  6: 'PHDR',
  7: 'TLS',
  1685382480: 'GNU_EH_FRAME',
  1685382481: 'GNU_STACK',
  1685382482: 'GNU_RELRO',
  1685382483: 'GNU_PROPERTY',
};

/** x86-64 psABI relocation types, named as readelf prints them. */
const R_X86_64_NAMES: string[] = [
  'R_X86_64_NONE',
  'R_X86_64_64',
  'R_X86_64_PC32',
  'R_X86_64_GOT32',
  'R_X86_64_PLT32',
  'R_X86_64_COPY',
  'R_X86_64_GLOB_DAT',
  'R_X86_64_JUMP_SLOT',
  'R_X86_64_RELATIVE',
  'R_X86_64_GOTPCREL',
  'R_X86_64_32',
  'R_X86_64_32S',
  'R_X86_64_16',
  'R_X86_64_PC16',
  'R_X86_64_8',
  'R_X86_64_PC8',
  'R_X86_64_DTPMOD64',
  'R_X86_64_DTPOFF64',
  'R_X86_64_TPOFF64',
  'R_X86_64_TLSGD',
  'R_X86_64_TLSLD',
  'R_X86_64_DTPOFF32',
  'R_X86_64_GOTTPOFF',
  'R_X86_64_TPOFF32',
  'R_X86_64_PC64',
  'R_X86_64_GOTOFF64',
  'R_X86_64_GOTPC32',
  'R_X86_64_GOT64',
  'R_X86_64_GOTPCREL64',
  'R_X86_64_GOTPC64',
  'R_X86_64_GOTPLT64',
  'R_X86_64_PLTOFF64',
  'R_X86_64_SIZE32',
  'R_X86_64_SIZE64',
  'R_X86_64_GOTPC32_TLSDESC',
  'R_X86_64_TLSDESC_CALL',
  'R_X86_64_TLSDESC',
  'R_X86_64_IRELATIVE',
  'R_X86_64_RELATIVE64',
  '',
  '',
  'R_X86_64_GOTPCRELX',
  'R_X86_64_REX_GOTPCRELX',
];

export const R_X86_64: Record<string, number> = Object.fromEntries(
  R_X86_64_NAMES.map((n, i) => [n.replace('R_X86_64_', ''), i] as const).filter(([n]) => n !== ''),
);

export function relocationTypeName(type: number): string {
  const n = R_X86_64_NAMES[type];
  return n ? n : `unrecognized: ${type.toString(16)}`;
}

/** Inverse of relocationTypeName, for callers that speak in names (`R_X86_64_PC32` or `PC32`). */
export function relocationTypeByName(name: string): number | undefined {
  return R_X86_64[name.replace(/^R_X86_64_/, '')];
}

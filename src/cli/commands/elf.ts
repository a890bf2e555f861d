/*
 * `suture elf <file>`: what our ELF engine sees in a file, readelf-style, or as JSON.
 *
 * Small files (objects, modules) are parsed whole; large ones (a debug vmlinux) are read piecewise: the
 * section headers, notes and the symbol index, never the whole file. `--lookup NAME` shows every symbol
 * of that name with its FILE group and the sympos the livepatch core would count.
 */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  ElfFile,
  type ElfObject,
  indexSymbols,
  type KernelSymbol,
  NT_GNU_BUILD_ID,
  parseNotes,
  readElfFile,
  relocationTypeName,
  SHT,
  sectionFlagLetters,
  sectionIndexName,
  sectionTypeName,
  symbolBindName,
  symbolTypeName,
  symbolVisibilityName,
} from '../../elf/index.js';

interface Options {
  sections?: boolean;
  symbols?: boolean;
  relocs?: boolean;
  notes?: boolean;
  lookup?: string;
  json?: boolean;
}

const LARGE = 256 * 1024 * 1024;

/** JSON has no 64-bit integers: addresses and addends are written as hex strings (`0xffffffff81000000`, `-0x4`). */
function bigintAsHex(_key: string, v: unknown): unknown {
  if (typeof v !== 'bigint') return v;
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}
const hex = (v: bigint | number, w = 16) => v.toString(16).padStart(w, '0');

export function register(program: Command): void {
  program
    .command('elf <file>')
    .description('show sections, symbols, relocations and notes of an ELF file as Suture reads them')
    .option('--sections', 'section headers')
    .option('--symbols', 'symbol table(s)')
    .option('--relocs', 'relocations')
    .option('--notes', 'notes (build id)')
    .option('--lookup <name>', 'every symbol of that name, with its FILE group and livepatch sympos')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: Options) => {
      // `suture elf ... | head` closes the pipe early: that is not an error
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') process.exit(0);
        throw e;
      });
      const all = !opts.sections && !opts.symbols && !opts.relocs && !opts.notes && !opts.lookup;
      const want = {
        sections: all || !!opts.sections,
        symbols: !!opts.symbols,
        relocs: !!opts.relocs,
        notes: all || !!opts.notes,
      };
      const size = (await stat(file).catch(() => ({ size: 0 }))).size;
      if (opts.lookup !== undefined) return lookup(file, opts.lookup, !!opts.json);
      if (size > LARGE) return large(file, want, !!opts.json);
      const obj = await readElfFile(file);
      const out: Record<string, unknown> = {};
      const lines: string[] = [];
      if (want.sections) sections(obj, out, lines);
      if (want.symbols) symbols(obj, out, lines);
      if (want.relocs) relocs(obj, out, lines);
      if (want.notes) notes(obj, out, lines);
      print(out, lines, !!opts.json);
    });
}

function print(out: Record<string, unknown>, lines: string[], json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(out, bigintAsHex, 2)}\n`);
  else process.stdout.write(`${lines.join('\n')}\n`);
}

function sections(obj: ElfObject, out: Record<string, unknown>, lines: string[]): void {
  const rows = obj.sections.map((s, i) => ({
    index: i + 1,
    name: s.name,
    type: sectionTypeName(s.type),
    flags: sectionFlagLetters(s.flags),
    addr: s.addr,
    offset: s.offset,
    size: s.size,
    entsize: s.entsize,
    link: s.link ? obj.sectionIndex(s.link) : 0,
    info: s.infoSection ? obj.sectionIndex(s.infoSection) : s.info,
    align: s.addralign,
  }));
  out.sections = rows;
  lines.push(
    'Section Headers:',
    '  [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al',
  );
  for (const r of rows)
    lines.push(
      `  [${String(r.index).padStart(2)}] ${r.name.padEnd(17)} ${r.type.padEnd(15)} ${hex(r.addr)} ${hex(r.offset, 6)} ${hex(r.size, 6)} ${hex(r.entsize, 2)} ${r.flags.padStart(3)} ${String(r.link).padStart(2)} ${String(r.info).padStart(3)} ${String(r.align).padStart(2)}`,
    );
}

function symbols(obj: ElfObject, out: Record<string, unknown>, lines: string[]): void {
  const tables: Record<string, unknown[]> = {};
  for (const t of obj.sections) {
    if (!t.symbols) continue;
    const rows = t.symbols.map((s, i) => ({
      index: i + 1,
      value: s.value,
      size: s.size,
      type: symbolTypeName(s.type),
      bind: symbolBindName(s.bind),
      visibility: symbolVisibilityName(s.visibility),
      ndx: s.section ? String(obj.sectionIndex(s.section)) : sectionIndexName(s.shndx),
      section: s.section?.name,
      name: s.name,
    }));
    tables[t.name] = rows;
    lines.push(
      '',
      `Symbol table '${t.name}' contains ${rows.length + 1} entries:`,
      '   Num:    Value          Size Type    Bind   Vis      Ndx Name',
    );
    for (const r of rows)
      lines.push(
        `${String(r.index).padStart(6)}: ${hex(r.value)} ${String(r.size).padStart(5)} ${r.type.padEnd(7)} ${r.bind.padEnd(6)} ${r.visibility.padEnd(8)} ${r.ndx.padStart(3)} ${r.name}`,
      );
  }
  out.symbols = tables;
}

function relocs(obj: ElfObject, out: Record<string, unknown>, lines: string[]): void {
  const secs: Record<string, unknown[]> = {};
  for (const s of obj.sections) {
    if (!s.relocations) continue;
    const table = s.link;
    const rows = s.relocations.map((r) => ({
      offset: r.offset,
      type: relocationTypeName(r.type),
      symbolIndex: r.symbol && table ? obj.symbolIndex(r.symbol, table) : 0,
      symbol: r.symbol ? r.symbol.name || r.symbol.section?.name || '' : '',
      addend: r.addend,
    }));
    secs[s.name] = rows;
    lines.push(
      '',
      `Relocation section '${s.name}' applies to ${s.infoSection?.name ?? '(none)'}, ${rows.length} entries:`,
      '    Offset          Type                      Sym  Symbol + Addend',
    );
    for (const r of rows)
      lines.push(
        `  ${hex(r.offset)} ${r.type.padEnd(25)} ${String(r.symbolIndex).padStart(4)}  ${r.symbol} ${r.addend < 0n ? '-' : '+'} ${(r.addend < 0n ? -r.addend : r.addend).toString(16)}`,
      );
  }
  out.relocations = secs;
}

function notes(obj: ElfObject, out: Record<string, unknown>, lines: string[]): void {
  const rows: unknown[] = [];
  for (const s of obj.sections)
    for (const n of s.notes ?? []) {
      const r = { section: s.name, name: n.name, type: n.type, desc: Buffer.from(n.desc).toString('hex') };
      rows.push(r);
      lines.push(
        `Note in ${s.name}: ${n.name} type ${n.type}${n.name === 'GNU' && n.type === NT_GNU_BUILD_ID ? ' (build id)' : ''}: ${r.desc}`,
      );
    }
  out.notes = rows;
}

async function large(
  file: string,
  want: Record<'sections' | 'symbols' | 'relocs' | 'notes', boolean>,
  json: boolean,
): Promise<void> {
  const out: Record<string, unknown> = {};
  const lines: string[] = [];
  const f = await ElfFile.open(file);
  try {
    if (want.sections) {
      out.sections = f.sections
        .slice(1)
        .map((s) => ({ ...s, type: sectionTypeName(s.type), flags: sectionFlagLetters(s.flags) }));
      lines.push(
        'Section Headers:',
        '  [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al',
      );
      for (const s of f.sections.slice(1))
        lines.push(
          `  [${String(s.index).padStart(2)}] ${s.name.padEnd(17)} ${sectionTypeName(s.type).padEnd(15)} ${hex(s.addr)} ${hex(s.offset, 6)} ${hex(s.size, 6)} ${hex(s.entsize, 2)} ${sectionFlagLetters(s.flags).padStart(3)} ${String(s.link).padStart(2)} ${String(s.info).padStart(3)} ${String(s.addralign).padStart(2)}`,
        );
    }
    if (want.notes) {
      const rows: unknown[] = [];
      for (const h of f.sections)
        if (h.type === SHT.NOTE)
          for (const n of parseNotes(await f.readSection(h), h.offset, h.addralign, h.name, file)) {
            const desc = Buffer.from(n.desc).toString('hex');
            rows.push({ section: h.name, name: n.name, type: n.type, desc });
            lines.push(
              `Note in ${h.name}: ${n.name} type ${n.type}${n.name === 'GNU' && n.type === NT_GNU_BUILD_ID ? ' (build id)' : ''}: ${desc}`,
            );
          }
      out.notes = rows;
    }
  } finally {
    await f.close();
  }
  if (want.symbols) {
    const ix = await indexSymbols(file);
    out.symbols = ix.symbols.map(symbolRow);
    lines.push('', `Symbol table '.symtab' contains ${ix.symbols.length + 1} entries:`);
    for (const s of ix.symbols) lines.push(symbolLine(s));
  }
  if (want.relocs) lines.push('', '(relocations of files over 256 MiB are not listed: use readelf -rW)');
  print(out, lines, json);
}

function symbolRow(s: KernelSymbol) {
  return {
    index: s.index,
    name: s.name,
    value: s.value,
    size: s.size,
    type: symbolTypeName(s.type),
    bind: symbolBindName(s.bind),
    section: s.section,
    file: s.file ? { basename: s.file.basename, ordinal: s.file.ordinal } : undefined,
    kallsyms: s.kallsyms,
    sympos: s.sympos,
  };
}

function symbolLine(s: KernelSymbol): string {
  const file = s.file ? `${s.file.basename}${s.file.ordinal ? `#${s.file.ordinal}` : ''}` : '-';
  return `${String(s.index).padStart(6)}: ${hex(s.value)} ${String(s.size).padStart(5)} ${symbolTypeName(s.type).padEnd(7)} ${symbolBindName(s.bind).padEnd(6)} ${(s.section ?? sectionIndexName(s.shndx)).padEnd(14)} ${file.padEnd(20)} ${s.kallsyms ? `sympos ${s.sympos}` : 'not in kallsyms'}  ${s.name}`;
}

async function lookup(file: string, name: string, json: boolean): Promise<void> {
  const ix = await indexSymbols(file);
  const found = ix.byName(name);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ object: ix.object, name, symbols: found.map(symbolRow) }, bigintAsHex, 2)}\n`,
    );
    return;
  }
  if (found.length === 0) {
    process.stdout.write(`no symbol named ${name} in ${ix.object}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${found.length} symbol(s) named ${name} in ${ix.object}:\n`);
  for (const s of found) process.stdout.write(`${symbolLine(s)}\n`);
}

/*
 * Test support: our reader's view of an object, compared field by field with binutils' `readelf -W`.
 *
 * readelf is the reference the issue names. Its text is parsed (section headers, symbol tables,
 * relocations, section groups) and every field is compared with what readElf() produced; the result is a
 * list of human-readable mismatches (empty = agreement).
 */
import { spawnSync } from 'node:child_process';
import {
  relocationTypeName,
  SHT,
  STT,
  sectionFlagLetters,
  sectionIndexName,
  sectionTypeName,
  symbolBindName,
  symbolTypeName,
  symbolVisibilityName,
} from '../constants.js';
import type { ElfObject } from '../model.js';

export function readelf(args: string[], path: string): string {
  const r = spawnSync('readelf', [...args, path], { encoding: 'latin1', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`readelf ${args.join(' ')} ${path}: ${r.stderr}`);
  return r.stdout;
}

export interface RSection {
  index: number;
  name: string;
  type: string;
  addr: string;
  off: string;
  size: string;
  es: string;
  flg: string;
  lk: number;
  inf: number;
  al: number;
}

export function parseSections(text: string): RSection[] {
  const out: RSection[] = [];
  let inTable = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('Section Headers:')) inTable = true;
    else if (line.startsWith('Key to Flags:')) inTable = false;
    if (!inTable) continue;
    const m = /^\s+\[\s*(\d+)\]\s(.*)$/.exec(line);
    if (!m) continue;
    const t = m[2]!.trim().split(/\s+/);
    const al = Number(t.pop());
    const inf = Number(t.pop());
    const lk = Number(t.pop());
    let flg = t.pop()!;
    let es: string;
    if (/^[0-9a-f]{2}$/.test(flg)) {
      es = flg;
      flg = '';
    } else es = t.pop()!;
    const size = t.pop()!;
    const off = t.pop()!;
    const addr = t.pop()!;
    const name = t.length === 1 ? '' : t[0]!;
    const type = t.length === 1 ? t[0]! : t.slice(1).join(' ');
    out.push({ index: Number(m[1]), name, type, addr, off, size, es, flg, lk, inf, al });
  }
  return out;
}

interface RSymbol {
  num: number;
  value: string;
  size: string;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  name: string;
}

function parseSymbols(text: string): Map<string, RSymbol[]> {
  const tables = new Map<string, RSymbol[]>();
  let cur: RSymbol[] | undefined;
  for (const line of text.split('\n')) {
    const h = /^Symbol table '([^']+)' contains (\d+) entries/.exec(line);
    if (h) {
      cur = [];
      tables.set(h[1]!, cur);
      continue;
    }
    const m = /^\s*(\d+): ([0-9a-f]{16})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s?(.*)$/.exec(line);
    if (m && cur)
      cur.push({
        num: Number(m[1]),
        value: m[2]!,
        size: m[3]!,
        type: m[4]!,
        bind: m[5]!,
        vis: m[6]!,
        ndx: m[7]!,
        name: m[8]!,
      });
  }
  return tables;
}

interface RReloc {
  offset: string;
  info: string;
  type: string;
  addend: string;
}

function parseRelocs(text: string): Map<string, RReloc[]> {
  const secs = new Map<string, RReloc[]>();
  let cur: RReloc[] | undefined;
  for (const line of text.split('\n')) {
    const h = /^Relocation section '([^']+)' at offset/.exec(line);
    if (h) {
      cur = [];
      secs.set(h[1]!, cur);
      continue;
    }
    const m = /^([0-9a-f]{16})\s+([0-9a-f]{16})\s+(\S+)\s+(.*)$/.exec(line);
    if (!m || !cur) continue;
    const rest = m[4]!;
    const a = /([+-]) ([0-9a-f]+)$/.exec(rest);
    const addend = a
      ? `${a[1] === '-' ? '-' : ''}${BigInt(`0x${a[2]}`).toString(16)}`
      : BigInt(`0x${rest.trim().split(/\s+/).pop() ?? '0'}`).toString(16);
    cur.push({ offset: m[1]!, info: m[2]!, type: m[3]!, addend });
  }
  return secs;
}

function parseGroups(text: string): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  let cur: number[] | undefined;
  for (const line of text.split('\n')) {
    const h = /group section \[\s*(\d+)\]/.exec(line);
    if (h) {
      cur = [];
      groups.set(Number(h[1]), cur);
      continue;
    }
    const m = /^\s+\[\s*(\d+)\]\s+\S/.exec(line);
    if (m && cur) cur.push(Number(m[1]));
  }
  return groups;
}

const hex = (v: bigint | number, w: number) => v.toString(16).padStart(w, '0');

/** Compare `obj` (read from `path`) with readelf -W; returns mismatch descriptions (at most `limit`). */
export function compareWithReadelf(obj: ElfObject, path: string, limit = 20): string[] {
  const bad: string[] = [];
  const note = (s: string) => {
    if (bad.length < limit) bad.push(`${path}: ${s}`);
  };
  const text = readelf(['-W', '-S', '-s', '-r', '-g'], path);
  // sections
  const rs = parseSections(text);
  if (rs.length !== obj.sections.length + 1)
    note(`readelf lists ${rs.length} sections, we read ${obj.sections.length + 1}`);
  obj.sections.forEach((s, i) => {
    const r = rs[i + 1];
    if (!r) return;
    const ours: RSection = {
      index: i + 1,
      name: s.name,
      type: sectionTypeName(s.type),
      addr: hex(s.addr, 16),
      off: hex(s.offset, 6),
      size: hex(s.size, 6),
      es: hex(s.entsize, 2),
      flg: sectionFlagLetters(s.flags),
      lk: s.link ? obj.sectionIndex(s.link) : 0,
      inf: s.infoSection ? obj.sectionIndex(s.infoSection) : s.info,
      al: s.addralign,
    };
    for (const k of Object.keys(ours) as (keyof RSection)[])
      if (String(ours[k]) !== String(r[k]))
        note(`section [${i + 1}] ${s.name}: ${k} ours ${ours[k]} readelf ${r[k]}`);
  });
  // symbols
  const tables = parseSymbols(text);
  for (const t of obj.sections) {
    if (!t.symbols) continue;
    const r = tables.get(t.name);
    if (!r) {
      note(`readelf shows no symbol table ${t.name}`);
      continue;
    }
    if (r.length !== t.symbols.length + 1)
      note(`${t.name}: readelf ${r.length} symbols, ours ${t.symbols.length + 1}`);
    t.symbols.forEach((s, i) => {
      const x = r[i + 1];
      if (!x) return;
      const ndx = s.section ? String(obj.sectionIndex(s.section)) : sectionIndexName(s.shndx);
      const size = x.size.startsWith('0x') ? BigInt(x.size) : BigInt(x.size);
      const sectionName = s.type === STT.SECTION && s.section ? s.section.name : undefined;
      // readelf appends symbol versions to dynamic symbols (`free@GLIBC_2.2.5 (3)`); versions are not ours to show
      const nameOk =
        x.name === s.name ||
        (s.name === '' && x.name === sectionName) ||
        (t.type === SHT.DYNSYM && x.name.startsWith(`${s.name}@`));
      if (
        x.value !== hex(s.value, 16) ||
        size !== BigInt(s.size) ||
        x.type !== symbolTypeName(s.type) ||
        x.bind !== symbolBindName(s.bind) ||
        x.vis !== symbolVisibilityName(s.visibility) ||
        x.ndx !== ndx ||
        !nameOk
      )
        note(
          `${t.name}[${i + 1}]: ours ${hex(s.value, 16)} ${s.size} ${symbolTypeName(s.type)} ${symbolBindName(s.bind)} ${symbolVisibilityName(s.visibility)} ${ndx} ${s.name} / readelf ${x.value} ${x.size} ${x.type} ${x.bind} ${x.vis} ${x.ndx} ${x.name}`,
        );
    });
  }
  // relocations
  const relocs = parseRelocs(text);
  for (const s of obj.sections) {
    if (!s.relocations) continue;
    const r = relocs.get(s.name);
    if (!r) {
      if (s.relocations.length > 0) note(`readelf shows no relocation section ${s.name}`);
      continue;
    }
    if (r.length !== s.relocations.length)
      note(`${s.name}: readelf ${r.length} relocations, ours ${s.relocations.length}`);
    const table = s.link;
    s.relocations.forEach((rel, i) => {
      const x = r[i];
      if (!x) return;
      const symIdx = rel.symbol && table ? obj.symbolIndex(rel.symbol, table) : 0;
      const info = hex((BigInt(symIdx) << 32n) | BigInt(rel.type), 16);
      const addend = rel.addend < 0n ? `-${(-rel.addend).toString(16)}` : rel.addend.toString(16);
      if (
        x.offset !== hex(rel.offset, 16) ||
        x.info !== info ||
        x.type !== relocationTypeName(rel.type) ||
        (s.type === SHT.RELA && x.addend !== addend)
      )
        note(
          `${s.name}[${i}]: ours ${hex(rel.offset, 16)} ${info} ${relocationTypeName(rel.type)} ${addend} / readelf ${x.offset} ${x.info} ${x.type} ${x.addend}`,
        );
    });
  }
  // groups
  const groups = parseGroups(text);
  for (const s of obj.sections) {
    if (!s.group) continue;
    const idx = obj.sectionIndex(s);
    const r = groups.get(idx);
    const ours = s.group.members.map((m) => obj.sectionIndex(m));
    if (!r || r.join(',') !== ours.join(','))
      note(`group [${idx}] ${s.name}: ours ${ours.join(',')} readelf ${r?.join(',')}`);
  }
  return bad;
}

/** `readelf -aW` with file offsets masked (they legitimately change on re-layout). */
export function readelfAllNormalized(path: string): string {
  return readelf(['-aW'], path)
    .split('\n')
    .map((l) =>
      l
        .replace(/^(\s+\[\s*\d+\] \S+\s+.*?[0-9a-f]{16} )[0-9a-f]{6,}/, '$1OFFSET')
        .replace(/at offset 0x[0-9a-f]+/, 'at offset X')
        .replace(/^(\s*Start of section headers:\s+).*/, '$1X'),
    )
    .join('\n');
}

/** `objdump -dr` without its first lines (which name the file). */
export function objdumpNormalized(path: string): string {
  const r = spawnSync('objdump', ['-dr', path], { encoding: 'latin1', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`objdump -dr ${path}: ${r.stderr}`);
  return r.stdout.split('\n').slice(3).join('\n');
}

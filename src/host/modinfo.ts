/*
 * Module info: the `.modinfo` section of a kernel module, read straight from the .ko file.
 *
 * The kernel decides whether a module is a livepatch from `livepatch=Y` in .modinfo (set by
 * MODULE_INFO(livepatch, "Y")), checks `vermagic` against its own, and names the module after
 * `name=` (modpost writes it). Reading these before init_module lets `apply` refuse a module that is
 * not a livepatch or was built for another kernel without touching the running kernel at all.
 *
 * Only what is needed is parsed: the ELF64 little-endian header, the section headers, the section
 * name table and the .modinfo bytes (NUL-separated `key=value` strings). Every offset is bounds-checked.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { SutureError } from '../diagnostic.js';

export interface ModuleInfo {
  /** module name as the kernel will know it (`name=` or the file name with '-' → '_') */
  name: string;
  livepatch: boolean;
  /** e.g. `6.1.0-53-cloud-amd64 SMP preempt mod_unload modversions ` */
  vermagic: string | undefined;
  /** the kernel release at the start of vermagic */
  release: string | undefined;
  /** every key, in order; repeated keys (alias, depends...) keep all values */
  fields: Array<[string, string]>;
}

function bad(file: string, offset: number, field: string, message: string): never {
  throw new SutureError({
    code: 'HOST-MODULE-INVALID',
    message: `${basename(file)} is not a loadable kernel module: ${message}`,
    location: { file, offset, field },
    hint: 'pass the livepatch-NAME.ko that `suture build` produced',
  });
}

export function parseModinfo(bytes: Uint8Array, file: string): ModuleInfo {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 64) bad(file, 0, 'e_ident', `only ${buf.length} bytes, smaller than an ELF header`);
  if (buf.readUInt32BE(0) !== 0x7f454c46) bad(file, 0, 'e_ident', 'no ELF magic');
  if (buf[4] !== 2 || buf[5] !== 1) bad(file, 4, 'e_ident', 'not a 64-bit little-endian ELF file');
  if (buf.readUInt16LE(16) !== 1) bad(file, 16, 'e_type', 'not a relocatable object (ET_REL)');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shentsize !== 64) bad(file, 0x3a, 'e_shentsize', `section header size ${shentsize}, expected 64`);
  if (shoff + shnum * 64 > buf.length)
    bad(file, 0x28, 'e_shoff', 'section headers run past the end of the file');
  if (shstrndx >= shnum) bad(file, 0x3e, 'e_shstrndx', `index ${shstrndx} out of ${shnum} sections`);
  const section = (i: number) => {
    const h = shoff + i * 64;
    const offset = Number(buf.readBigUInt64LE(h + 0x18));
    const size = Number(buf.readBigUInt64LE(h + 0x20));
    const type = buf.readUInt32LE(h + 4);
    if (type !== 8 /* SHT_NOBITS */ && offset + size > buf.length) {
      bad(file, h, `section[${i}].sh_offset`, 'section contents run past the end of the file');
    }
    return { name: buf.readUInt32LE(h), offset, size };
  };
  const strtab = section(shstrndx);
  const nameOf = (n: number) => {
    const start = strtab.offset + n;
    if (n >= strtab.size) bad(file, start, 'sh_name', 'section name outside the section name table');
    const end = buf.indexOf(0, start);
    return buf.toString('latin1', start, end < 0 ? strtab.offset + strtab.size : end);
  };
  let modinfo: { offset: number; size: number } | undefined;
  for (let i = 1; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.name) === '.modinfo') modinfo = s;
  }
  if (!modinfo) bad(file, shoff, '.modinfo', 'no .modinfo section (was it built with kbuild?)');
  const fields: Array<[string, string]> = [];
  for (const entry of buf.toString('utf8', modinfo.offset, modinfo.offset + modinfo.size).split('\0')) {
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    fields.push([entry.slice(0, eq), entry.slice(eq + 1)]);
  }
  const get = (k: string) => fields.find(([key]) => key === k)?.[1];
  const vermagic = get('vermagic');
  return {
    name: get('name') ?? basename(file).replace(/\.ko$/, '').replace(/-/g, '_'),
    livepatch: get('livepatch') === 'Y',
    vermagic,
    release: vermagic?.split(/\s+/)[0] || undefined,
    fields,
  };
}

export function readModinfo(file: string): ModuleInfo {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new SutureError({
      code: 'HOST-MODULE-UNREADABLE',
      message: `cannot read ${file}: ${(e as Error).message}`,
      location: { file },
      hint: 'check the path to the livepatch .ko',
    });
  }
  return parseModinfo(bytes, file);
}

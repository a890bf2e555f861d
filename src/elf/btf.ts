/*
 * A small reader of BTF, the kernel's compact type format (the `.BTF` section of a vmlinux built with
 * DEBUG_INFO_BTF; see the kernel's Documentation/bpf/btf.rst): a header, a run of type records and a
 * string table. We read only what we need: every struct and union with its size and members, by name.
 * Every length and offset is checked against the section, so a damaged section is an ELF-BAD-BTF error.
 */
import { elfFail } from './bounds.js';
import { withElfFileSync } from './file-sync.js';

const MAGIC = 0xeb9f;
/** BTF kinds (btf.rst "Type encoding") and the bytes that follow each type record, by vlen */
const KIND = { STRUCT: 4, UNION: 5 } as const;
const TRAILER: Readonly<Record<number, (vlen: number) => number>> = {
  0: () => 0, // VOID never appears in the section; a 0 kind is damage, caught below
  1: () => 4, // INT
  2: () => 0, // PTR
  3: () => 12, // ARRAY
  4: (v) => 12 * v, // STRUCT
  5: (v) => 12 * v, // UNION
  6: (v) => 8 * v, // ENUM
  7: () => 0, // FWD
  8: () => 0, // TYPEDEF
  9: () => 0, // VOLATILE
  10: () => 0, // CONST
  11: () => 0, // RESTRICT
  12: () => 0, // FUNC
  13: (v) => 8 * v, // FUNC_PROTO
  14: () => 4, // VAR
  15: (v) => 12 * v, // DATASEC
  16: () => 0, // FLOAT
  17: () => 4, // DECL_TAG
  18: () => 0, // TYPE_TAG
  19: (v) => 12 * v, // ENUM64
};

export interface BtfMember {
  name: string;
  /** offset in bits (a bitfield's offset when the struct's kind_flag is set: low 24 bits) */
  bitOffset: number;
}

export interface BtfStruct {
  name: string;
  kind: 'struct' | 'union';
  size: number;
  members: BtfMember[];
}

/** The named structs and unions of a BTF blob (the first of a name wins; vmlinux has one of each). */
export function parseBtfStructs(btf: Uint8Array, file?: string): Map<string, BtfStruct> {
  const b = Buffer.from(btf.buffer, btf.byteOffset, btf.byteLength);
  const where = (offset: number, field: string) => ({ file, offset, field: `.BTF ${field}` });
  const bad = (offset: number, field: string, what: string): never =>
    elfFail(
      'ELF-BAD-BTF',
      `.BTF: ${what}`,
      where(offset, field),
      'the BTF type section is damaged or of an unknown version',
      'rebuild or re-download the debug vmlinux',
    );
  if (b.length < 24 || b.readUInt16LE(0) !== MAGIC) bad(0, 'magic', 'not a little-endian BTF blob');
  if (b[2] !== 1) bad(2, 'version', `version ${b[2]} (only 1 is known)`);
  const hdrLen = b.readUInt32LE(4);
  const typeOff = hdrLen + b.readUInt32LE(8);
  const typeEnd = typeOff + b.readUInt32LE(12);
  const strOff = hdrLen + b.readUInt32LE(16);
  const strEnd = strOff + b.readUInt32LE(20);
  if (hdrLen < 24 || typeEnd > b.length || strEnd > b.length) bad(4, 'header', 'sections run past its end');
  const name = (off: number, at: number): string => {
    const start = strOff + off;
    if (start >= strEnd) return bad(at, 'name_off', `name offset ${off} is outside the strings`);
    const end = b.indexOf(0, start);
    if (end < 0 || end >= strEnd) return bad(at, 'name_off', 'unterminated name');
    return b.toString('latin1', start, end);
  };
  const out = new Map<string, BtfStruct>();
  for (let at = typeOff; at < typeEnd; ) {
    if (at + 12 > typeEnd) bad(at, 'type', 'a type record is cut off');
    const info = b.readUInt32LE(at + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const trailer = TRAILER[kind];
    if (!trailer || kind === 0) return bad(at, 'info', `unknown kind ${kind}`);
    const next = at + 12 + trailer(vlen);
    if (next > typeEnd) bad(at, 'type', 'a type record runs past the type section');
    if (kind === KIND.STRUCT || kind === KIND.UNION) {
      const n = name(b.readUInt32LE(at), at);
      if (n !== '' && !out.has(n)) {
        const bitfields = info >>> 31 === 1;
        const members: BtfMember[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = at + 12 + 12 * i;
          const off = b.readUInt32LE(m + 8);
          members.push({ name: name(b.readUInt32LE(m), m), bitOffset: bitfields ? off & 0xffffff : off });
        }
        out.set(n, {
          name: n,
          kind: kind === KIND.STRUCT ? 'struct' : 'union',
          size: b.readUInt32LE(at + 8),
          members,
        });
      }
    }
    at = next;
  }
  return out;
}

/** The structs of a (large) ELF file's `.BTF` section, read without loading the rest; undefined without one. */
export function readBtfStructs(path: string): Map<string, BtfStruct> | undefined {
  return withElfFileSync(path, (f) => {
    const h = f.sections.find((s) => s.name === '.BTF');
    return h ? parseBtfStructs(f.readSection(h), path) : undefined;
  });
}

/*
 * ELF string tables as the writer builds them: every name once, with tail merging (".text" shares the
 * bytes of ".rela.text"), or the table read from the file, byte for byte, when it still holds every name.
 */

/** A string table's bytes and the offset of each name in it. */
export interface StringTable {
  data: Buffer;
  offsets: Map<string, number>;
}

/** A string table built from a set of names, deduplicated with tail merging. */
export function buildStringTable(names: Iterable<string>): StringTable {
  const unique = [...new Set(names)].filter((n) => n !== '');
  const reversed = unique.map((n) => ({ n, r: [...n].reverse().join('') }));
  reversed.sort((a, b) => (a.r < b.r ? 1 : a.r > b.r ? -1 : 0)); // descending: a suffix follows its owner
  const offsets = new Map<string, number>([['', 0]]);
  const placed: string[] = [];
  let size = 1;
  let prev: string | undefined;
  for (const { n, r } of reversed) {
    const prevR = prev === undefined ? undefined : [...prev].reverse().join('');
    if (prev !== undefined && prevR!.startsWith(r)) {
      offsets.set(n, offsets.get(prev)! + Buffer.byteLength(prev, 'latin1') - Buffer.byteLength(n, 'latin1'));
    } else {
      offsets.set(n, size);
      placed.push(n);
      size += Buffer.byteLength(n, 'latin1') + 1;
    }
    prev = n;
  }
  const data = Buffer.alloc(size);
  for (const n of placed) data.write(n, offsets.get(n)!, 'latin1');
  return { data, offsets };
}

/**
 * An unchanged object keeps its string tables byte for byte: when the table read from the file still
 * holds every name and is not much larger than a fresh one (nothing of substance was removed), reuse it.
 * After real edits (symbols dropped, names added) the fresh, compact table is used.
 */
export function keepOriginalStrings(original: Uint8Array, fresh: StringTable): StringTable | undefined {
  if (original.length === 0 || original[0] !== 0 || original[original.length - 1] !== 0) return undefined;
  if (original.length > fresh.data.length * 1.1 + 64) return undefined;
  const data = Buffer.from(original.buffer, original.byteOffset, original.byteLength);
  const whole = new Map<string, number>();
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0) continue;
    const str = data.toString('latin1', start, i);
    if (!whole.has(str)) whole.set(str, start);
    start = i + 1;
  }
  const offsets = new Map<string, number>([['', 0]]);
  for (const name of fresh.offsets.keys()) {
    if (name === '') continue;
    let at = whole.get(name);
    if (at === undefined) {
      const i = data.indexOf(Buffer.from(`${name}\0`, 'latin1'));
      if (i < 0) return undefined;
      at = i;
    }
    offsets.set(name, at);
  }
  return { data, offsets };
}

/*
 * Fuzz: damage real objects at random for a bounded time and require that the reader (and the writer
 * on whatever the reader accepts, and the file-based readers) either succeed or throw a SutureError —
 * never another exception, never a hang (the test has a timeout), never a runaway allocation.
 *
 * Inputs: the assembled tiny object and real modules shipped with the target kernel. Mutations aim at
 * the bytes that steer parsing (ELF header, section headers, symbol and relocation entries) with
 * boundary values, plus random byte flips and truncations. SUTURE_FUZZ_SECONDS (default 20) sets the
 * duration; SUTURE_FUZZ_SEED reproduces a run (the seed is printed on failure).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isSutureError } from '../diagnostic.js';
import { ensureKernel } from '../kernel/fetch.js';
import { defaultRelease } from '../kernel/target.js';
import { readBuildId } from './build-id.js';
import { ET, SHT } from './constants.js';
import { readHeaders } from './headers.js';
import { readElf } from './reader.js';
import { indexSymbols } from './symbol-index.js';
import { tinyObject } from './testing/tiny-object.js';
import { writeElf } from './writer.js';

const SECONDS = Number(process.env.SUTURE_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.SUTURE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** mulberry32: small, seedable, good enough to pick mutations */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Target {
  name: string;
  bytes: Buffer;
  /** offsets of fields that steer parsing, with their width */
  fields: { at: number; width: 1 | 2 | 4 | 8 }[];
}

function targetOf(name: string, bytes: Buffer): Target {
  const fields: Target['fields'] = [];
  for (const [at, width] of [
    [4, 1],
    [5, 1],
    [32, 8],
    [40, 8],
    [52, 2],
    [54, 2],
    [56, 2],
    [58, 2],
    [60, 2],
    [62, 2],
  ] as const)
    fields.push({ at, width });
  const { sections } = readHeaders(bytes);
  for (const s of sections) {
    const h = s.headerOffset;
    fields.push(
      { at: h, width: 4 },
      { at: h + 4, width: 4 },
      { at: h + 8, width: 8 },
      { at: h + 24, width: 8 },
    );
    fields.push(
      { at: h + 32, width: 8 },
      { at: h + 40, width: 4 },
      { at: h + 44, width: 4 },
      { at: h + 48, width: 8 },
      { at: h + 56, width: 8 },
    );
    if (s.type === SHT.SYMTAB || s.type === SHT.RELA || s.type === SHT.GROUP) {
      const entries = Math.min(64, Math.floor(s.size / 24));
      for (let i = 0; i < entries; i++) {
        const p = s.offset + i * (s.type === SHT.GROUP ? 4 : 24);
        if (s.type === SHT.GROUP) fields.push({ at: p, width: 4 });
        else if (s.type === SHT.SYMTAB)
          fields.push({ at: p, width: 4 }, { at: p + 6, width: 2 }, { at: p + 16, width: 8 });
        else fields.push({ at: p + 8, width: 8 }, { at: p + 12, width: 4 });
      }
    }
  }
  return { name, bytes, fields };
}

function mutate(t: Target, r: () => number): Buffer {
  const b = Buffer.from(t.bytes);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const rounds = 1 + Math.floor(r() * 3);
  let out = b;
  for (let k = 0; k < rounds; k++) {
    const kind = r();
    if (kind < 0.6) {
      const f = pick(t.fields);
      const boundary = [
        0n,
        1n,
        0xffn,
        0xff00n,
        0xfff1n,
        0xffffn,
        0xffffffffn,
        BigInt(b.length),
        BigInt(b.length + 1),
        0x7fffffffffffffffn,
        0xffffffffffffffffn,
      ];
      const v = r() < 0.7 ? pick(boundary) : BigInt(Math.floor(r() * 2 ** 32));
      const mask = (1n << BigInt(f.width * 8)) - 1n;
      const x = v & mask;
      if (f.at + f.width > b.length) continue;
      if (f.width === 1) b[f.at] = Number(x);
      else if (f.width === 2) b.writeUInt16LE(Number(x), f.at);
      else if (f.width === 4) b.writeUInt32LE(Number(x), f.at);
      else b.writeBigUInt64LE(x, f.at);
    } else if (kind < 0.9) {
      for (let i = 0; i < 1 + Math.floor(r() * 8); i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    } else {
      out = b.subarray(0, Math.floor(r() * b.length));
    }
  }
  return out;
}

test(`fuzz: ${SECONDS}s of damaged real objects give only success or SutureError (seed ${SEED})`, {
  timeout: (SECONDS + 120) * 1000,
}, async () => {
  const targets = [targetOf('tiny.o', tinyObject())];
  try {
    const kernel = await ensureKernel(defaultRelease());
    for (const rel of ['kernel/fs/fat/vfat.ko', 'kernel/fs/fat/fat.ko', 'kernel/net/key/af_key.ko']) {
      const p = join(kernel.modulesDir, rel);
      if (existsSync(p)) targets.push(targetOf(rel, readFileSync(p)));
    }
  } catch (e) {
    if (!isSutureError(e)) throw e;
  }
  const r = rng(SEED);
  const deadline = Date.now() + SECONDS * 1000;
  const outcomes = new Map<string, number>();
  let runs = 0;
  let slowest = 0;
  while (Date.now() < deadline) {
    const t = targets[runs % targets.length]!;
    const bytes = mutate(t, r);
    const started = Date.now();
    let outcome = 'ok';
    try {
      const obj = readElf(bytes, t.name);
      if (obj.header.type === ET.REL) writeElf(obj);
      if (runs % 25 === 0) {
        const p = join(tmp, 'f.o');
        writeFileSync(p, bytes);
        await readBuildId(p).catch((e: unknown) => {
          if (!isSutureError(e)) throw e;
        });
        await indexSymbols(p);
      }
    } catch (e) {
      if (!isSutureError(e)) {
        mkdirSync('artifacts/fuzz', { recursive: true });
        writeFileSync(join('artifacts/fuzz', `crash-${SEED}-${runs}.o`), bytes);
        assert.fail(`seed ${SEED} run ${runs} on ${t.name}: ${e instanceof Error ? e.stack : String(e)}`);
      }
      outcome = e.code;
    }
    slowest = Math.max(slowest, Date.now() - started);
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    runs++;
  }
  console.log(
    `fuzz seed ${SEED}: ${runs} runs over ${targets.length} objects, slowest ${slowest} ms`,
    Object.fromEntries(outcomes),
  );
  assert.ok(runs > 100, 'the fuzzer ran');
  assert.ok(outcomes.size > 5, 'mutations reached many different checks');
});

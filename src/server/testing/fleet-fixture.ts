/*
 * Test fixture: fake patches and fake machines speaking the real wire protocol.
 *
 * A FakeMachine is what an agent looks like to the server — enroll, check in with a patch state,
 * report, download — with every response parsed through protocol.ts, so the tests also prove the
 * server answers what the agent will parse. `writePatch` makes a module file and its manifest: a small
 * ELF relocatable with random code and the .modinfo publish inspects (livepatch=Y, name, vermagic), or
 * given bytes for tests of what publish refuses; the server never loads it. `patchRecord` is a
 * published patch as the store keeps it, for tests that write the store directly or print patches.
 * Used by the server's tests and benchmark, and the CLI's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSection, ElfObject, EM_X86_64, ET, SHF, SHT, writeElf } from '../../elf/index.js';
import { type Manifest, parseManifest } from '../../manifest/manifest.js';
import {
  AGENT_ANSWER_FIELDS,
  ANSWER_FIELDS_HEADER,
  type CheckinResponse,
  checkinResponseSchema,
  type EnrollResponse,
  enrollResponseSchema,
  type KernelIdentity,
  machineApi,
  type PatchStatus,
  type ReportRequest,
} from '../../manifest/protocol.js';
import type { PatchRecord } from '../store.js';

export const RELEASE = '6.1.0-53-cloud-amd64';
export const BUILD_ID = '1f2e3d4c5b6a79880123456789abcdef01234567';
export const OTHER_BUILD_ID = 'ffffffffffffffffffffffffffffffffffffffff';

/** A published patch as the store keeps it (no module behind it): `NAME_proc_show` replaced in vmlinux. */
export function patchRecord(
  id: string,
  opts: { name?: string; buildId?: string; tiers?: string[]; at?: string; cves?: string[] } = {},
): PatchRecord {
  const name = opts.name ?? 'cmdline';
  const buildId = opts.buildId ?? BUILD_ID;
  const manifest = parseManifest({
    schema: 1,
    name,
    kernel: { release: RELEASE, buildId },
    objects: [{ name: 'vmlinux', functions: [{ name: `${name}_proc_show`, sympos: 0 }] }],
    module: { file: `livepatch-${name}.ko`, sha256: 'a'.repeat(64), name: `livepatch_${name}` },
    tool: { name: 'suture', version: '0.1.0' },
  });
  return {
    id,
    name,
    version: manifest.version,
    kernelRelease: RELEASE,
    buildId,
    moduleName: manifest.module.name,
    manifest,
    signature: 's'.repeat(88),
    sha256: manifest.module.sha256,
    size: 10,
    cves: opts.cves ?? [],
    description: '',
    publishedAt: opts.at ?? '2026-01-01T00:00:00.000Z',
    tiers: opts.tiers ?? ['canary'],
  };
}

export interface WrittenPatch {
  module: string;
  manifestPath: string;
  manifest: Manifest;
  bytes: Buffer;
}

export async function writePatch(
  dir: string,
  opts: {
    name: string;
    version?: string;
    buildId?: string;
    release?: string;
    cves?: string[];
    /** bytes of (random) code */
    size?: number;
    /** .modinfo entries to write instead of the right ones (`undefined` values are left out) */
    modinfo?: Partial<Record<'name' | 'livepatch' | 'vermagic', string | undefined>>;
    /** the module file's bytes as given (publish's refusals) */
    bytes?: Buffer;
  },
): Promise<WrittenPatch> {
  const moduleName = `livepatch_${opts.name.replace(/-/g, '_')}`;
  const bytes =
    opts.bytes ??
    fakeModule(opts.size ?? 4096, {
      name: moduleName,
      livepatch: 'Y',
      vermagic: `${opts.release ?? RELEASE} SMP preempt mod_unload modversions `,
      ...opts.modinfo,
    });
  const module = join(
    dir,
    `livepatch-${opts.name}-${opts.version ?? '1'}-${(opts.buildId ?? BUILD_ID).slice(0, 6)}.ko`,
  );
  await writeFile(module, bytes);
  const manifest = parseManifest({
    schema: 1,
    name: opts.name,
    version: opts.version ?? '1',
    kernel: { release: opts.release ?? RELEASE, buildId: opts.buildId ?? BUILD_ID },
    replace: true,
    objects: [
      { name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, file: 'fs/proc/cmdline.c' }] },
    ],
    module: {
      file: `livepatch-${opts.name}.ko`,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      name: moduleName,
    },
    cves: opts.cves ?? [],
    tool: { name: 'suture', version: '0.1.0' },
  });
  const manifestPath = join(
    dir,
    `manifest-${opts.name}-${opts.version ?? '1'}-${(opts.buildId ?? BUILD_ID).slice(0, 6)}.json`,
  );
  await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
  return { module, manifestPath, manifest, bytes };
}

/** An ELF64 x86-64 relocatable object: `.text` of random bytes and a `.modinfo` of these entries (none: null). */
export function fakeModule(textBytes: number, modinfo: Record<string, string | undefined> | null): Buffer {
  const info = Buffer.from(
    Object.entries(modinfo ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(''),
  );
  const header = {
    type: ET.REL,
    machine: EM_X86_64,
    version: 1,
    osabi: 0,
    abiversion: 0,
    entry: 0n,
    flags: 0,
    phoff: 0,
    shoff: 0,
  };
  const text = createSection({
    name: '.text',
    type: SHT.PROGBITS,
    flags: SHF.ALLOC | SHF.EXECINSTR,
    addralign: 16,
    data: randomBytes(textBytes),
  });
  const sections = [text];
  if (modinfo)
    sections.push(createSection({ name: '.modinfo', type: SHT.PROGBITS, flags: SHF.ALLOC, data: info }));
  return Buffer.from(writeElf(new ElfObject(header, sections, [])));
}

export class FakeMachine {
  enrollment?: EnrollResponse;
  patches: PatchStatus[] = [];

  constructor(
    readonly server: string,
    readonly hostname: string,
    readonly kernel: KernelIdentity = { release: RELEASE, buildId: BUILD_ID },
  ) {}

  get id(): string {
    if (!this.enrollment) throw new Error('not enrolled');
    return this.enrollment.machineId;
  }

  private headers(): Record<string, string> {
    if (!this.enrollment) throw new Error('not enrolled');
    return { authorization: `Bearer ${this.enrollment.credential}`, 'content-type': 'application/json' };
  }

  async enroll(token: string): Promise<EnrollResponse> {
    const res = await fetch(this.server + machineApi.enroll, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, hostname: this.hostname, kernel: this.kernel, agentVersion: 'fake-1' }),
    });
    if (res.status !== 201) throw new Error(`enroll: HTTP ${res.status} ${await res.text()}`);
    this.enrollment = enrollResponseSchema.parse(await res.json());
    return this.enrollment;
  }

  async checkin(): Promise<CheckinResponse> {
    const res = await fetch(this.server + machineApi.checkin, {
      method: 'POST',
      // the fake speaks today's protocol, as the agent does
      headers: { ...this.headers(), [ANSWER_FIELDS_HEADER]: AGENT_ANSWER_FIELDS },
      body: JSON.stringify({
        kernel: this.kernel,
        hostname: this.hostname,
        agentVersion: 'fake-1',
        patches: this.patches,
      }),
    });
    if (res.status !== 200) throw new Error(`checkin: HTTP ${res.status} ${await res.text()}`);
    return checkinResponseSchema.parse(await res.json());
  }

  async report(status: PatchStatus, action: ReportRequest['action'] = 'apply'): Promise<void> {
    this.patches = [...this.patches.filter((p) => p.patchId !== status.patchId), status];
    const res = await fetch(this.server + machineApi.report, {
      method: 'POST',
      headers: this.headers(),
      body: JSON.stringify({ kernel: this.kernel, status, action }),
    });
    if (res.status !== 200) throw new Error(`report: HTTP ${res.status} ${await res.text()}`);
  }

  async download(patchId: string): Promise<{ status: number; bytes: Buffer }> {
    const res = await fetch(this.server + machineApi.module(patchId), { headers: this.headers() });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  }
}

/*
 * The agent's test rig: the host layer's fake kernel (src/host/fake-kernel.ts), the real server
 * in-process, the tampering proxy between them, and an enrolled agent context whose every host-layer
 * apply is counted. `publishable` makes a module the fake kernel accepts, with its manifest.
 * Test support only.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKernel, fakeManifest, writeFakeModule } from '../../host/testing/fake-kernel.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { AgentContext } from '../context.js';
import { enroll } from '../enroll.js';
import { hostKernel } from '../host-binding.js';
import { type ServerBackend, startFleetBackend } from './fleet-backend.js';
import { TamperProxy } from './tamper-proxy.js';

export type Cleanups = (() => Promise<void> | void)[];

/** The host's fakeManifest for the cmdline patch, with a CVE; `over` replaces whole fields. */
export function manifestFor(
  k: FakeKernel,
  file: string,
  moduleName: string,
  over: Partial<Manifest> = {},
): Manifest {
  return {
    ...fakeManifest(k, file, moduleName),
    objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, change: 'changed' }] }],
    cves: ['CVE-2026-0001'],
    ...over,
  };
}

export interface Rig {
  k: FakeKernel;
  backend: ServerBackend;
  proxy: TamperProxy;
  ctx: AgentContext;
  log: string[];
  insmods(): string[];
  /** every call the agent made into the host layer's apply */
  hostApplies: string[];
}

export async function rig(cleanups: Cleanups, tier = 'canary'): Promise<Rig> {
  const k = new FakeKernel({ signalEvery: 5, tickMs: 20 });
  cleanups.push(() => k.dispose());
  const backend = await startFleetBackend();
  cleanups.push(() => backend.stop());
  const proxy = new TamperProxy(backend.url);
  await proxy.up();
  cleanups.push(() => proxy.down());
  const stateDir = mkdtempSync(join(tmpdir(), 'suture-agent-'));
  const log: string[] = [];
  const hostApplies: string[] = [];
  const port = hostKernel(k.roots);
  const ctx: AgentContext = {
    stateDir,
    kernel: {
      ...port,
      apply: (a) => {
        hostApplies.push(a.manifest.name);
        return port.apply(a);
      },
    },
    hostname: 'test-machine',
    applyTimeoutMs: 2000,
    log: (l) => log.push(l),
  };
  await enroll({
    stateDir,
    token: await backend.createToken(tier),
    server: proxy.url,
    hostname: 'test-machine',
    kernel: ctx.kernel,
  });
  return {
    k,
    backend,
    proxy,
    ctx,
    log,
    hostApplies,
    insmods: () => k.calls.filter((c) => c.startsWith('insmod')),
  };
}

export function publishable(
  r: Rig,
  moduleName: string,
  over: Partial<Manifest> = {},
): { file: string; manifest: Manifest } {
  r.k.specs.set(moduleName, { objects: { vmlinux: ['cmdline_proc_show'] } });
  const file = r.k.writeModule(moduleName);
  return { file, manifest: manifestFor(r.k, file, moduleName, over) };
}

/** Version `version` of a livepatch (distinct bytes, same module name), with its manifest. */
export function publishableVersion(
  r: Rig,
  moduleName: string,
  version: string,
  over: Partial<Manifest> = {},
): { file: string; manifest: Manifest } {
  r.k.specs.set(moduleName, {
    objects: { vmlinux: ['cmdline_proc_show'] },
    ...(over.replace ? { replace: true } : {}),
  });
  const dir = mkdtempSync(join(tmpdir(), `suture-v${version}-`));
  const file = join(dir, `${moduleName.replace(/_/g, '-')}.ko`);
  writeFakeModule(file, {
    license: 'GPL',
    name: moduleName,
    version,
    livepatch: 'Y',
    vermagic: `${r.k.release} SMP preempt mod_unload modversions `,
  });
  return { file, manifest: manifestFor(r.k, file, moduleName, { version, ...over }) };
}

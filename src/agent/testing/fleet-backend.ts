/*
 * The server side of the agent's tests, behind one small interface: make tokens, publish, promote,
 * revoke, and read back what a machine reported. `offerFor` obtains a real, correctly signed offer
 * for any kernel by enrolling a throwaway machine that claims that kernel — how the refusal tests get
 * a patch for another build id that the server would never offer to the machine under test.
 * Test support only.
 */
import { readFileSync } from 'node:fs';
import type { Manifest } from '../../manifest/manifest.js';
import type { KernelIdentity, OfferedPatch, PatchStatus } from '../../manifest/protocol.js';
import { ServerClient } from '../server-client.js';
import { ProtocolDouble } from './protocol-double.js';

export interface FleetBackend {
  url: string;
  createToken(tier: string): Promise<string>;
  publish(module: string, manifest: Manifest, tier: string): Promise<string>;
  promote(patchId: string, tier: string): Promise<void>;
  revoke(patchId: string): Promise<void>;
  /** the patch state the server holds for a machine (from its check-ins and reports) */
  machineState(machineId: string, patchId: string): Promise<string | undefined>;
  machineReport(machineId: string, patchId: string): Promise<PatchStatus | undefined>;
  offerFor(patchId: string, tier: string, kernel: KernelIdentity): Promise<OfferedPatch>;
  stop(): Promise<void>;
}

export async function offerVia(
  url: string,
  token: string,
  patchId: string,
  kernel: KernelIdentity,
): Promise<OfferedPatch> {
  const e = await new ServerClient(url).enroll({
    token,
    hostname: 'impostor',
    kernel,
    agentVersion: '0.1.0',
  });
  const c = await new ServerClient(url, e.credential).checkin({
    kernel,
    hostname: 'impostor',
    agentVersion: '0.1.0',
    patches: [],
  });
  const o = c.offered.find((x) => x.patchId === patchId);
  if (!o) throw new Error(`the server does not offer ${patchId} to ${kernel.release}/${kernel.buildId}`);
  return o;
}

export async function startFleetBackend(): Promise<FleetBackend> {
  const d = new ProtocolDouble();
  d.intervalSeconds = 1;
  await d.listen();
  return {
    url: d.url,
    createToken: async (tier) => d.createToken(tier),
    publish: async (module, manifest, tier) => d.publish(manifest, readFileSync(module), tier),
    promote: async (id, tier) => d.promote(id, tier),
    revoke: async (id) => d.revoke(id),
    machineState: async (m, id) => d.machines.get(m)?.patches.get(id)?.state,
    machineReport: async (m, id) => d.machines.get(m)?.patches.get(id),
    offerFor: async (id, tier, kernel) => offerVia(d.url, d.createToken(tier), id, kernel),
    stop: () => d.close(),
  };
}

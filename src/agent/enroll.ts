/*
 * Enrollment: trade a token for this machine's own credential, and pin the server's key.
 *
 * `suture agent enable <TOKEN> --server URL` posts the token with the machine's hostname and exact
 * kernel to POST /v1/enroll. The answer — machine id, credential, the server's ed25519 public key, the
 * tier — is written atomically into the state. The public key is pinned here: every answer and manifest
 * must verify with it, whatever a later answer says, until a rotation announced under it moves the
 * trust (answer.ts). Enrolling again (a new token, another
 * server) replaces the enrollment but keeps the record of applied patches.
 */
import { isSutureError, SutureError } from '../diagnostic.js';
import { publicKeyFromBase64 } from '../manifest/signature.js';
import { AGENT_VERSION } from './checkin.js';
import type { KernelPort } from './kernel-port.js';
import { ServerClient } from './server-client.js';
import { type Enrollment, updateState } from './state.js';

export interface EnrollArgs {
  stateDir: string;
  token: string;
  server: string;
  hostname: string;
  kernel: KernelPort;
}

export function parseServerUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new SutureError({
      code: 'AGENT-SERVER-URL',
      message: `--server ${JSON.stringify(server)} is not a URL`,
      hint: 'give the server as http://HOST:PORT (or https://…)',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SutureError({
      code: 'AGENT-SERVER-URL',
      message: `--server ${server}: only http and https are supported`,
      hint: 'give the server as http://HOST:PORT (or https://…)',
    });
  }
  return url.toString().replace(/\/+$/, '');
}

export async function enroll(args: EnrollArgs): Promise<Enrollment> {
  const server = parseServerUrl(args.server);
  const running = await args.kernel.runningKernel();
  const client = new ServerClient(server);
  const resp = await client
    .enroll({
      token: args.token,
      hostname: args.hostname,
      kernel: { release: running.release, buildId: running.buildId },
      agentVersion: AGENT_VERSION,
    })
    .catch((e: unknown) => {
      if (!isSutureError(e)) throw e;
      throw new SutureError({
        ...e.diagnostic,
        message: `enrollment failed: ${e.diagnostic.message}`,
        hint:
          e.code === 'AGENT-SERVER-UNREACHABLE'
            ? `check that the server runs and that ${server} is reachable from this machine; nothing was changed`
            : e.code === 'AGENT-SERVER-TLS'
              ? `${e.diagnostic.hint}; nothing was changed`
              : (e.diagnostic.hint ??
                'check the token (`suture token create` on the server); nothing was changed'),
      });
    });
  publicKeyFromBase64(resp.serverPublicKey); // a key that cannot verify anything is refused now
  const enrollment: Enrollment = {
    server,
    machineId: resp.machineId,
    credential: resp.credential,
    serverPublicKey: resp.serverPublicKey,
    tier: resp.tier,
    enrolledAt: new Date().toISOString(),
  };
  updateState(args.stateDir, (s) => {
    s.enrollment = enrollment;
    s.intervalSeconds = resp.checkinIntervalSeconds;
    s.kernel = { release: running.release, buildId: running.buildId };
    s.kernelSupported = running.livepatchSupported;
    s.lastCheck = null;
    s.failures = 0;
    s.offered = [];
    s.lastAnswer = null; // a new machine id: its answers count from 1 again
  });
  return enrollment;
}

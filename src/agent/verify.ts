/*
 * Verification of an offered patch, before anything is downloaded, let alone loaded.
 *
 * The server is trusted only through the key pinned at enrollment: the manifest's ed25519 signature
 * must verify with that key. The signed manifest names the exact kernel (release + vmlinux build id)
 * and the module's sha256, so once the signature holds, the agent checks the kernel against the one
 * running here and, after the download, the module's bytes against that hash (server-client.ts).
 * Anything that fails is refused with a SutureError; the caller records and reports it, and the host
 * layer is never called.
 */
import { SutureError } from '../diagnostic.js';
import type { OfferedPatch } from '../manifest/protocol.js';
import { assertManifestSignature } from '../manifest/signature.js';
import type { RunningKernel } from './kernel-port.js';

export function verifyOffer(offer: OfferedPatch, pinnedKey: string, kernel: RunningKernel): void {
  const m = offer.manifest;
  assertManifestSignature(m, offer.signature, pinnedKey);
  if (offer.sha256 !== m.module.sha256) {
    throw new SutureError({
      code: 'AGENT-OFFER-INCONSISTENT',
      message: `patch ${m.name}: the offer's sha256 ${offer.sha256} differs from the signed manifest's ${m.module.sha256}`,
      hint: 'nothing was loaded; the signed manifest is what counts — re-publish the patch on the server',
    });
  }
  if (m.kernel.release !== kernel.release || m.kernel.buildId !== kernel.buildId) {
    throw new SutureError({
      code: 'AGENT-WRONG-KERNEL',
      message: `patch ${m.name} was built for ${m.kernel.release} (build id ${m.kernel.buildId}), this machine runs ${kernel.release} (build id ${kernel.buildId})`,
      why: 'a livepatch is only ever loaded onto the exact kernel build it was made for',
      hint: 'nothing was loaded; publish a patch built for this kernel',
    });
  }
  if (!kernel.livepatchSupported) {
    throw new SutureError({
      code: 'AGENT-KERNEL-NOT-SUPPORTED',
      message: `the running kernel ${kernel.release} has no livepatch support (/sys/kernel/livepatch is absent)`,
      hint: 'boot a kernel built with CONFIG_LIVEPATCH=y',
    });
  }
}

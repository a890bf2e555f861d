/*
 * Verification of an offered patch, before anything is downloaded, let alone loaded.
 *
 * The server is trusted only through the key pinned at enrollment (or adopted through an announced
 * rotation): the manifest's ed25519 signature must verify with that key. An empty module is refused
 * here, for that patch alone. The signed manifest names the exact kernel (release + vmlinux build id)
 * and the module's sha256, so once the signature holds, the agent checks the kernel against the one
 * running here and, after the download, the module's bytes against that hash (server-client.ts).
 * Anything that fails is refused with a SutureError; the caller records and reports it, and the host
 * layer is never called.
 */
import { SutureError } from '../diagnostic.js';
import type { OfferedPatch } from '../manifest/protocol.js';
import { assertManifestSignature } from '../manifest/signature.js';
import { type RunningKernel, sameKernel } from './kernel-port.js';
import { MAX_MODULE_BYTES } from './server-client.js';

/** sha256 of zero bytes: a manifest naming it describes an empty module */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function verifyOffer(offer: OfferedPatch, pinnedKey: string, kernel: RunningKernel): void {
  const m = offer.manifest;
  assertManifestSignature(m, offer.signature, pinnedKey);
  if (offer.size === 0 || m.module.sha256 === EMPTY_SHA256) {
    throw new SutureError({
      code: 'AGENT-MODULE-EMPTY',
      message: `patch ${m.name} ${m.version}: its module is empty (0 bytes)`,
      why: 'an empty file is no kernel module; the server signed it without looking at it',
      hint: 'nothing was downloaded or loaded; revoke it on the server and publish the real module',
    });
  }
  if (offer.size > MAX_MODULE_BYTES) {
    throw new SutureError({
      code: 'AGENT-MODULE-TOO-LARGE',
      message: `patch ${m.name} ${m.version}: its module is announced as ${offer.size} bytes, more than the ${MAX_MODULE_BYTES} this agent accepts`,
      hint: 'nothing was downloaded or loaded; a livepatch module is kilobytes',
    });
  }
  if (offer.sha256 !== m.module.sha256) {
    throw new SutureError({
      code: 'AGENT-OFFER-INCONSISTENT',
      message: `patch ${m.name}: the offer's sha256 ${offer.sha256} differs from the signed manifest's ${m.module.sha256}`,
      hint: 'nothing was loaded; the signed manifest is what counts — re-publish the patch on the server',
    });
  }
  if (!sameKernel(m.kernel, kernel)) {
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

/*
 * Unloading a livepatch module once the kernel has let go of it.
 *
 * After a patch is disabled or replaced, the kernel frees it asynchronously (klp_free_patch_async) and
 * only then drops its reference on the module, so an immediate rmmod can fail with EBUSY: retry for a
 * short while. A patch whose removal was forced keeps its reference forever (a task may still run its
 * code): that failure is reported with the kernel's reason, never hidden.
 */
import { SutureError } from '../diagnostic.js';
import { KernelLogCursor } from './kmsg.js';
import { isModuleLoaded } from './livepatch.js';
import type { HostRoots } from './roots.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function unloadModule(roots: HostRoots, module: string, patienceMs = 5000): Promise<void> {
  const log = KernelLogCursor.open(roots);
  try {
    const until = Date.now() + patienceMs;
    let last = '';
    for (;;) {
      if (!isModuleLoaded(roots, module)) return;
      const r = await roots.loader.rmmod(module);
      if (r.ok && !isModuleLoaded(roots, module)) return;
      last = r.output || `exit status ${r.status}`;
      if (Date.now() >= until) break;
      await sleep(200);
    }
    const said = log.since().map((r) => `kernel: ${r.text}`);
    throw new SutureError({
      code: 'HOST-UNLOAD-FAILED',
      message: `module ${module} could not be removed: ${last}`,
      detail: said,
      why: 'the kernel still holds a reference on it: the patch is active, in transition, or its transition was forced (a forced patch can never be unloaded)',
      hint: `check \`suture status\`; if ${module} is still active run \`suture revert ${module}\``,
    });
  } finally {
    log.close();
  }
}

/*
 * Verifying a livepatch module before the kernel is touched: it must be a livepatch (`livepatch=Y` in
 * .modinfo), its vermagic release must be the running release, and when a manifest is given, the
 * manifest's release and vmlinux build id must match the running kernel (build id from
 * /sys/kernel/notes), its sha256 must match the file and its module name the module's.
 */
import { readFileSync } from 'node:fs';
import { SutureError } from '../diagnostic.js';
import type { Manifest } from '../manifest/manifest.js';
import { runningKernel } from './identity.js';
import { readModinfo } from './modinfo.js';
import type { HostRoots } from './roots.js';

function refuse(code: string, message: string, why: string, hint: string, file: string): never {
  throw new SutureError({ code, message, location: { file }, why, hint });
}

/** The file's sha256; node:crypto is loaded only when a manifest asks (start-up time under TCG). */
async function sha256(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Everything checked before the kernel is touched; returns the module name and what was verified. */
export async function verifyModule(
  roots: HostRoots,
  file: string,
  manifest: Manifest | undefined,
): Promise<{ patch: string; release: string; buildId: string | undefined; verified: string[] }> {
  const info = readModinfo(file);
  if (!info.livepatch) {
    refuse(
      'HOST-NOT-LIVEPATCH',
      `${info.name} is not a livepatch module (no livepatch=Y in .modinfo)`,
      'the kernel only runs klp_enable_patch() safely from modules marked as livepatches; an ordinary module would be loaded with full privileges and patch nothing',
      'pass the livepatch-NAME.ko produced by `suture build` (MODULE_INFO(livepatch, "Y"))',
      file,
    );
  }
  const kernel = runningKernel(roots);
  const verified = ['livepatch=Y in .modinfo'];
  if (info.release !== undefined) {
    if (info.release !== kernel.release) {
      refuse(
        'HOST-KERNEL-MISMATCH',
        `${info.name} was built for ${info.release}, this machine runs ${kernel.release}`,
        `the module's vermagic is "${info.vermagic?.trim()}"; loading it into another kernel would patch code it was not built against`,
        `build the patch for ${kernel.release} (suture build --kernel ${kernel.release})`,
        file,
      );
    }
    verified.push(`vermagic release ${info.release}`);
  }
  if (manifest) {
    if (manifest.kernel.release !== kernel.release) {
      refuse(
        'HOST-KERNEL-MISMATCH',
        `manifest targets ${manifest.kernel.release}, this machine runs ${kernel.release}`,
        'a livepatch is only ever loaded onto the kernel it was built for',
        `use the patch built for ${kernel.release}`,
        file,
      );
    }
    if (kernel.buildId === undefined) {
      refuse(
        'HOST-NO-BUILD-ID',
        'the running kernel exposes no GNU build id in /sys/kernel/notes',
        `the manifest requires vmlinux build id ${manifest.kernel.buildId} and it cannot be verified`,
        'check that sysfs is mounted; without a build id Suture will not load a manifest-checked patch',
        file,
      );
    }
    if (manifest.kernel.buildId !== kernel.buildId) {
      refuse(
        'HOST-BUILD-ID-MISMATCH',
        `manifest targets vmlinux build id ${manifest.kernel.buildId}, the running kernel's is ${kernel.buildId}`,
        `same release (${kernel.release}) but a different build: the patch's offsets and symbol positions would not match`,
        'rebuild the patch against this exact kernel build (its -dbg vmlinux)',
        file,
      );
    }
    verified.push(`vmlinux build id ${kernel.buildId}`);
    const sha = await sha256(file);
    if (sha !== manifest.module.sha256) {
      refuse(
        'HOST-MODULE-SHA256',
        `${file} has sha256 ${sha}, the manifest says ${manifest.module.sha256}`,
        'the module is not the one the manifest describes (corrupted, or a different build)',
        'use the module that was shipped with this manifest',
        file,
      );
    }
    verified.push('module sha256');
    if (manifest.module.name !== info.name) {
      refuse(
        'HOST-MODULE-NAME',
        `module is named ${info.name}, the manifest says ${manifest.module.name}`,
        'the manifest describes another module',
        'use the module that was shipped with this manifest',
        file,
      );
    }
  }
  return { patch: info.name, release: kernel.release, buildId: kernel.buildId, verified };
}

/*
 * A target kernel: everything Suture knows about one exact kernel build it can patch.
 *
 * A target is identified by its release (`uname -r`, e.g. `6.1.0-53-cloud-amd64`) and, more strictly,
 * by the GNU build id of its vmlinux: two kernels with the same release but different build ids are
 * different targets, and a livepatch is only ever loaded onto the build id it was made for.
 *
 * Every path below lives in the content-addressed cache (see cache.ts) and is complete when returned:
 * `ensureKernel()` (fetch.ts) only hands out a KernelTarget after every artifact was downloaded,
 * verified against the archive's SHA256, extracted and renamed into place.
 */

/** The release Suture's tests and demo use unless SUTURE_KERNEL says otherwise (Debian 6.1.187-1). */
export const DEFAULT_RELEASE = '6.1.0-53-cloud-amd64';

export function defaultRelease(): string {
  return process.env.SUTURE_KERNEL ?? DEFAULT_RELEASE;
}

export interface KernelTarget {
  /** `uname -r`, e.g. `6.1.0-53-cloud-amd64` */
  release: string;
  /** Debian package version shared by image, headers, source and dbg, e.g. `6.1.187-1` */
  debianVersion: string;
  /** GNU build id of vmlinux (hex), as in /sys/kernel/notes of the running kernel */
  buildId: string;
  /** cache directory holding this target's artifacts */
  dir: string;
  /** bootable kernel image */
  vmlinuz: string;
  /** the image's kernel config (`/boot/config-<release>`) */
  config: string;
  /** the image's modules: `<modulesDir>/kernel/...`, `modules.dep`, `modules.order` ... */
  modulesDir: string;
  /** debug vmlinux with full symbol table (from the -dbg package) */
  vmlinux: string;
  /** directory of the -dbg package's debug `.ko` files (`<dir>/kernel/...`), for module targets */
  debugModulesDir: string;
  /**
   * Prepared kernel source tree of the same Debian version: the image's config, `olddefconfig`,
   * `modules_prepare` with KERNELRELEASE = release, and the headers package's Module.symvers.
   * Livepatch modules are built with `make -C <sourceTree> M=<dir>`; never modify it in place
   * (copy or overlay the files a build changes).
   */
  sourceTree: string;
  /** Module.symvers of the image (exported symbols and their CRCs) */
  moduleSymvers: string;
}

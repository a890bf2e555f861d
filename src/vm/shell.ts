/*
 * An interactive VM for a person: the console is this terminal (QEMU in raw mode, Ctrl-A x quits,
 * Ctrl-A c toggles QEMU's monitor), /init starts a shell on it, leaving the shell powers the VM off.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleInitramfs } from './initramfs.js';
import type { VmOptions } from './options.js';
import { checkKernelImage, checkQemu, qemuArgs, spawnQemu } from './qemu.js';

/** Run until the guest powers off or QEMU is quit; resolves with QEMU's exit status. */
export async function shellVm(
  opts: Omit<VmOptions, 'onConsole' | 'timeoutMs' | 'bootTimeoutMs'>,
): Promise<number> {
  checkQemu();
  checkKernelImage(opts.kernel.vmlinuz);
  const workDir = mkdtempSync(join(tmpdir(), 'suture-vm-'));
  try {
    const modules = [...(opts.modules ?? [])];
    if (opts.net) modules.push('virtio_pci', 'virtio_net');
    const initramfs = await assembleInitramfs({
      kernel: opts.kernel,
      guest: { nonce: randomBytes(8).toString('hex'), mode: 'shell', net: opts.net === true },
      modules,
      ...(opts.placeModules ? { placeModules: opts.placeModules } : {}),
      ...(opts.files ? { files: opts.files } : {}),
      withSuture: opts.withSuture === true,
      ...(opts.nodeFlags ? { nodeFlags: opts.nodeFlags } : {}),
      workDir,
    });
    const args = qemuArgs({
      vmlinuz: opts.kernel.vmlinuz,
      initrd: initramfs.path,
      memoryMb: opts.memoryMb ?? (opts.withSuture ? 1024 : 512),
      ...(opts.append ? { append: opts.append } : {}),
      net: opts.net === true,
      interactive: true,
    });
    const child = spawnQemu(args, 'inherit');
    return await new Promise<number>((res) => child.once('exit', (code) => res(code ?? 1)));
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

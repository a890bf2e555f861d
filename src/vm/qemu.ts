/*
 * The QEMU command line for a Suture VM, and the registry of running QEMU processes.
 *
 * TCG only (KVM does not work on our build machines), one CPU, no default devices. ttyS0 is the
 * kernel console; the command channel is a virtio-serial port named `suture.ctl` (a Unix socket QEMU
 * connects to as a client; see guest.ts). It used to be a second emulated 16550 (ttyS1): in long
 * sessions under TCG that port now and then stopped delivering a command line to the guest for good
 * (a lost UART interrupt; empty lines sent as a wake-up did not revive it), while virtio's queues
 * have no such failure.
 * `panic=-1` with `-no-reboot` turns a kernel panic into QEMU exiting, so a dead kernel never looks
 * like a hang. `no_timer_check` skips the IO-APIC timer probe, which under TCG on a loaded host can
 * miss its ticks and panic at boot ("IO-APIC + timer doesn't work", seen booting 6.12.117+deb13).
 * Every QEMU we start is killed when this process exits, however it exits (spawnQemu).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fail } from '../diagnostic.js';

export const QEMU = process.env.SUTURE_QEMU ?? 'qemu-system-x86_64';
const SETPRIV = '/usr/bin/setpriv';

export interface QemuSpec {
  vmlinuz: string;
  initrd: string;
  memoryMb: number;
  append?: string;
  net: boolean;
  /** Unix socket for the command channel, a virtio-serial port (agent mode); absent in shell mode */
  controlSocket?: string;
  /** the console is the caller's terminal, with QEMU's monitor on Ctrl-A c */
  interactive: boolean;
  /** a qcow2 disk as virtio-blk /dev/vda (a Debian guest, see guest/) */
  disk?: string;
  /** a raw read-only image as /dev/vdb (files for the Debian guest, see guest/media.ts) */
  media?: string;
}

/** The guest finds its command channel by this name under /sys/class/virtio-ports (guest.ts). */
export const CONTROL_PORT_NAME = 'suture.ctl';

export function kernelCommandLine(extra?: string): string {
  return [
    'console=ttyS0,115200',
    'panic=-1',
    'random.trust_cpu=on',
    'net.ifnames=0',
    'no_timer_check',
    extra ?? '',
  ]
    .filter(Boolean)
    .join(' ');
}

export function qemuArgs(s: QemuSpec): string[] {
  const args = ['-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', String(s.memoryMb)];
  args.push('-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot');
  args.push('-serial', s.interactive ? 'mon:stdio' : 'stdio');
  if (s.controlSocket) {
    args.push('-chardev', `socket,id=ctl,path=${s.controlSocket}`);
    args.push('-device', 'virtio-serial-pci,id=vser,romfile=');
    args.push('-device', `virtserialport,bus=vser.0,chardev=ctl,name=${CONTROL_PORT_NAME}`);
  }
  if (s.disk) args.push('-drive', `file=${s.disk},if=virtio,format=qcow2,cache=unsafe`);
  if (s.media) args.push('-drive', `file=${s.media},if=virtio,format=raw,readonly=on`);
  if (s.net) args.push('-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,romfile=');
  args.push('-kernel', s.vmlinuz, '-initrd', s.initrd, '-append', kernelCommandLine(s.append));
  return args;
}

let checked = false;
export function checkQemu(): void {
  if (checked) return;
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    fail('VM-NO-QEMU', `${QEMU} is not runnable`, { hint: 'apt-get install qemu-system-x86' });
  }
  checked = true;
}

export function checkKernelImage(vmlinuz: string): void {
  if (!existsSync(vmlinuz)) {
    fail('VM-NO-KERNEL', `kernel image ${vmlinuz} does not exist`, {
      hint: 'fetch the target first: suture kernel fetch <release>',
    });
  }
}

const running = new Set<ChildProcess>();

function killAll(): void {
  for (const c of running) c.kill('SIGKILL');
}

/**
 * QEMU must never outlive us, however we die (a test runner's SIGKILL included): it is started under
 * `setpriv --pdeathsig KILL`, so the kernel kills it when this process goes. The exit hook covers the
 * normal case without waiting for that.
 */
export function spawnQemu(args: string[], stdio: 'pipe' | 'inherit' | 'ignore'): ChildProcess {
  const child = existsSync(SETPRIV)
    ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', QEMU, ...args], { stdio })
    : spawn(QEMU, args, { stdio });
  running.add(child);
  if (running.size === 1) process.on('exit', killAll);
  child.once('exit', () => {
    running.delete(child);
    if (running.size === 0) process.off('exit', killAll);
  });
  return child;
}

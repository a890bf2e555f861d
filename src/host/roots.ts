/*
 * Host roots: where the live kernel's interfaces are mounted, and who loads modules.
 *
 * Every function in host/ reads the kernel through a HostRoots value instead of hard-coded paths, so
 * the unit tests can run the real logic against fake sysfs/procfs trees they build in a temporary
 * directory (a patch in transition, a stalled task, a replaced patch...). Production code uses
 * `liveRoots()`: /sys, /proc, /dev/kmsg, the process's effective uid, /var/lib/suture (or
 * SUTURE_HOST_STATE), /etc/suture (or SUTURE_CONFIG_DIR) and `insmod`/`rmmod` (kmod's or busybox's, whichever is on PATH).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What happened when a module was loaded or removed: the tool's exit status and what it printed. */
export interface LoaderOutcome {
  ok: boolean;
  status: number | null;
  output: string;
}

/** Loads and removes kernel modules. The live one runs insmod/rmmod; tests inject a fake. */
export interface ModuleLoader {
  insmod(path: string): Promise<LoaderOutcome>;
  rmmod(name: string): Promise<LoaderOutcome>;
}

export interface HostRoots {
  /** sysfs mount point, normally `/sys` */
  sys: string;
  /** procfs mount point, normally `/proc` */
  proc: string;
  /** kernel log device, normally `/dev/kmsg` (a plain file of kmsg records in tests) */
  kmsg: string;
  /** effective uid of the caller; 0 means root */
  uid: number;
  /** Suture's own state on this host: `patches/` (the boot store) and `journal.jsonl`, normally /var/lib/suture */
  state: string;
  /** Suture's configuration on this host (the kill switch's `mode` file), normally /etc/suture */
  config: string;
  loader: ModuleLoader;
  /** sends a signal to a process (process.kill; a fake tree must never signal real pids) */
  kill: (pid: number, signal: NodeJS.Signals) => void;
  /** called after every sysfs write: the kernel reacts to writes synchronously, a fake tree needs telling */
  afterWrite?: (file: string, value: string) => void;
}

/** The first executable file `name` on PATH, then in the system's bin directories. */
export function findOnPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/sbin', '/usr/sbin', '/bin', '/usr/bin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

async function run(argv: string[]): Promise<LoaderOutcome> {
  // loaded here, not at the top: child_process pulls in net and streams, ~0.1 s of start-up under
  // TCG, and status, list or a boot with nothing to apply never load a module
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.on('error', (e) => resolve({ ok: false, status: null, output: `${cmd}: ${e.message}` }));
    child.on('close', (status) => resolve({ ok: status === 0, status, output: output.trim() }));
  });
}

/** The command that provides `tool` (insmod/rmmod): kmod's binary, or busybox's applet. */
function toolArgv(tool: 'insmod' | 'rmmod'): string[] {
  const direct = findOnPath(tool);
  if (direct) return [direct];
  const busybox = findOnPath('busybox');
  if (busybox) return [busybox, tool];
  return [tool];
}

export const liveLoader: ModuleLoader = {
  insmod: (path) => run([...toolArgv('insmod'), path]),
  rmmod: (name) => run([...toolArgv('rmmod'), name]),
};

export function liveRoots(): HostRoots {
  return {
    sys: '/sys',
    proc: '/proc',
    kmsg: '/dev/kmsg',
    uid: typeof process.geteuid === 'function' ? process.geteuid() : -1,
    state: process.env.SUTURE_HOST_STATE ?? '/var/lib/suture',
    config: process.env.SUTURE_CONFIG_DIR ?? '/etc/suture',
    loader: liveLoader,
    kill: (pid, signal) => {
      process.kill(pid, signal);
    },
  };
}

/** Fill in whatever the caller left out with the live machine's values. */
export function resolveRoots(partial?: Partial<HostRoots>): HostRoots {
  return { ...liveRoots(), ...(partial ?? {}) };
}

/*
 * A pretend kernel for the agent's tests, kept in one JSON file so it outlives a killed agent.
 *
 * It implements the agent's KernelPort the way the kernel behaves where the agent can tell: a module
 * is "loaded" (and its livepatch enabled) the moment apply starts — as after init_module — and the
 * transition completes `transitionMs` later, whether or not the agent is still there to watch; a second load of a loaded module fails like the kernel's
 * EEXIST; a cumulative (`replace`) patch disables every other one. Every load is appended to `loads`,
 * so a test can assert that nothing was ever loaded twice or loaded at all. Writes are atomic, so a
 * test may SIGKILL an agent child process in the middle of an apply and read the truth afterwards.
 * Test support only: the product binds the port to src/host (host-binding.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Manifest } from '../../manifest/manifest.js';
import type {
  KernelOpResult,
  KernelPort,
  LoadedLivepatch,
  RunningKernel,
  StalledTask,
} from '../kernel-port.js';
import { writeFileAtomic } from '../state.js';

export interface FileKernelState {
  release: string;
  buildId: string;
  livepatchSupported: boolean;
  /** `transitionUntil`: the kernel finishes the transition by itself at that time (ms since epoch) */
  loaded: (LoadedLivepatch & { sha256: string; transitionUntil?: number })[];
  /** every module load ever attempted that reached the kernel */
  loads: { name: string; sha256: string; at: string }[];
  reverts: { name: string; at: string }[];
  /** how long a transition takes, ms */
  transitionMs: number;
  /** when set, the next transition stalls on these tasks and is rolled back */
  stallWith?: StalledTask[];
  /** when set, the next load fails with this kernel message */
  failLoad?: string;
}

export class FileKernel implements KernelPort {
  constructor(readonly file: string) {}

  static create(
    file: string,
    init: Partial<FileKernelState> & { release: string; buildId: string },
  ): FileKernel {
    const s: FileKernelState = {
      livepatchSupported: true,
      loaded: [],
      loads: [],
      reverts: [],
      transitionMs: 0,
      ...init,
    };
    writeFileAtomic(file, JSON.stringify(s, null, 2), dirname(file));
    return new FileKernel(file);
  }

  read(): FileKernelState {
    return JSON.parse(readFileSync(this.file, 'utf8')) as FileKernelState;
  }

  write(s: FileKernelState): void {
    writeFileAtomic(this.file, JSON.stringify(s, null, 2), dirname(this.file));
  }

  async runningKernel(): Promise<RunningKernel> {
    const s = this.read();
    return { release: s.release, buildId: s.buildId, livepatchSupported: s.livepatchSupported };
  }

  async listLivepatches(): Promise<LoadedLivepatch[]> {
    const now = Date.now();
    return this.read().loaded.map(({ name, enabled, transition, transitionUntil }) => ({
      name,
      enabled,
      transition: transition && (transitionUntil === undefined || now < transitionUntil),
    }));
  }

  async apply(args: { module: string; manifest: Manifest; timeoutMs: number }): Promise<KernelOpResult> {
    const s = this.read();
    const name = args.manifest.module.name;
    const sha256 = createHash('sha256').update(readFileSync(args.module)).digest('hex');
    if (s.loaded.some((l) => l.name === name)) {
      return {
        ok: false,
        code: 'HOST-LOAD-FAILED',
        reason: `insmod: ${name}: File exists`,
        rolledBack: true,
      };
    }
    if (s.failLoad) {
      const reason = s.failLoad;
      delete s.failLoad;
      this.write(s);
      return { ok: false, code: 'HOST-LOAD-FAILED', reason, rolledBack: true };
    }
    s.loads.push({ name, sha256, at: new Date().toISOString() });
    s.loaded.push({
      name,
      enabled: true,
      transition: true,
      sha256,
      transitionUntil: Date.now() + s.transitionMs,
    });
    this.write(s);
    await new Promise((r) => setTimeout(r, s.transitionMs));
    const t = this.read();
    const mine = t.loaded.find((l) => l.name === name);
    if (t.stallWith && mine) {
      const tasks = t.stallWith;
      delete t.stallWith;
      t.loaded = t.loaded.filter((l) => l.name !== name);
      this.write(t);
      return {
        ok: false,
        code: 'HOST-TRANSITION-STALLED',
        reason: `transition did not complete in ${args.timeoutMs} ms; ${tasks.length} task(s) still on the old code; reverted`,
        stall: { seconds: args.timeoutMs / 1000, tasks },
        rolledBack: true,
      };
    }
    if (mine) mine.transition = false;
    if (args.manifest.replace) t.loaded = t.loaded.filter((l) => l.name === name);
    this.write(t);
    return { ok: true, seconds: s.transitionMs / 1000 };
  }

  async revert(args: { moduleName: string; timeoutMs: number }): Promise<KernelOpResult> {
    const s = this.read();
    if (!s.loaded.some((l) => l.name === args.moduleName)) {
      return {
        ok: false,
        code: 'HOST-NOT-LOADED',
        reason: `${args.moduleName} is not loaded`,
        rolledBack: true,
      };
    }
    s.loaded = s.loaded.filter((l) => l.name !== args.moduleName);
    s.reverts.push({ name: args.moduleName, at: new Date().toISOString() });
    this.write(s);
    return { ok: true, seconds: 0 };
  }
}

/*
 * A fake kernel for host/'s unit tests and benchmarks: sysfs, procfs and kmsg trees in a temporary
 * directory, plus a loader and a worker loop that behave like kernel/livepatch/ of 6.1.
 *
 * insmod of a (fake) livepatch .ko creates /sys/module/<m> and /sys/kernel/livepatch/<m> with
 * enabled/transition/force and the objects/functions, sets every task to the initial patch state and
 * starts a transition. The worker then does what klp_try_complete_transition does each retry: switch
 * every task whose stack holds none of the patch's functions (tasks can be told to hold them), honour
 * writes to `force` and to `enabled` (reversal), log "signaling remaining tasks" and wake pending
 * kthreads (their voluntary_ctxt_switches rise) every `signalEvery` retries, and on completion reset
 * the states to -1, drop the patch from sysfs when it was disabled, and drop the patches a replace
 * patch took over. Everything real about it is the file formats; the tests check host/ against them.
 */
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../manifest/manifest.js';
import { encodeBuildIdNote } from '../identity.js';
import { parseModinfo } from '../modinfo.js';
import type { HostRoots, LoaderOutcome, ModuleLoader } from '../roots.js';

/** Write a minimal ELF64 relocatable object whose only content is a .modinfo section. */
export function writeFakeModule(path: string, fields: Record<string, string>): void {
  const modinfo = Buffer.from(
    `${Object.entries(fields)
      .map(([k, v]) => `${k}=${v}\0`)
      .join('')}`,
    'utf8',
  );
  const shstr = Buffer.from('\0.modinfo\0.shstrtab\0', 'latin1');
  const dataOff = 64;
  const shstrOff = dataOff + modinfo.length;
  const shoff = (shstrOff + shstr.length + 7) & ~7;
  const out = Buffer.alloc(shoff + 3 * 64);
  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = 2;
  out[5] = 1;
  out[6] = 1;
  out.writeUInt16LE(1, 16); // ET_REL
  out.writeUInt16LE(62, 18); // x86-64
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(BigInt(shoff), 0x28);
  out.writeUInt16LE(64, 0x34);
  out.writeUInt16LE(64, 0x3a);
  out.writeUInt16LE(3, 0x3c);
  out.writeUInt16LE(2, 0x3e);
  modinfo.copy(out, dataOff);
  shstr.copy(out, shstrOff);
  const sh = (i: number, name: number, type: number, off: number, size: number) => {
    const h = shoff + i * 64;
    out.writeUInt32LE(name, h);
    out.writeUInt32LE(type, h + 4);
    out.writeBigUInt64LE(BigInt(off), h + 0x18);
    out.writeBigUInt64LE(BigInt(size), h + 0x20);
    out.writeBigUInt64LE(1n, h + 0x30);
  };
  sh(1, 1, 1, dataOff, modinfo.length);
  sh(2, 10, 3, shstrOff, shstr.length);
  writeFileSync(path, out);
}

export interface FakeTask {
  pid: number;
  tid?: number;
  comm: string;
  kthread?: boolean;
  /** kernel stack lines as /proc/<pid>/stack prints them */
  stack?: string[];
  /** function names this task sleeps in (it cannot switch while a patch replaces one of them) */
  holds?: string[];
}

export interface FakePatchSpec {
  /** object name → function names (sympos 0) */
  objects: Record<string, string[]>;
  replace?: boolean;
}

export interface FakeKernelOptions {
  release?: string;
  buildId?: string;
  livepatch?: boolean;
  uid?: number;
  /** retries between signalling rounds (the kernel: 15 retries of ~1 s) */
  signalEvery?: number;
  /** worker period in ms (the kernel: ~1000) */
  tickMs?: number;
}

export class FakeKernel {
  readonly dir: string;
  readonly roots: HostRoots;
  readonly release: string;
  readonly buildId: string;
  /** patches that insmod will create, by module name */
  readonly specs = new Map<string, FakePatchSpec>();
  /** module names whose init fails, with the kernel message */
  readonly failing = new Map<string, string>();
  readonly tasks: Array<FakeTask & { tid: number; switches: number }> = [];
  /** every insmod/rmmod the loader received */
  readonly calls: string[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private transition: { patch: string; target: 0 | 1; retries: number; signalled: number } | undefined;
  private readonly signalEvery: number;

  constructor(o: FakeKernelOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'suture-fake-kernel-'));
    this.release = o.release ?? '6.1.0-53-cloud-amd64';
    this.buildId = o.buildId ?? '0123456789abcdef0123456789abcdef01234567';
    this.signalEvery = o.signalEvery ?? 15;
    const sys = join(this.dir, 'sys');
    const proc = join(this.dir, 'proc');
    mkdirSync(join(sys, 'kernel'), { recursive: true });
    mkdirSync(join(sys, 'module'), { recursive: true });
    mkdirSync(join(proc, 'sys/kernel'), { recursive: true });
    if (o.livepatch !== false) mkdirSync(join(sys, 'kernel/livepatch'));
    writeFileSync(join(sys, 'kernel/notes'), encodeBuildIdNote(this.buildId));
    writeFileSync(join(proc, 'sys/kernel/osrelease'), `${this.release}\n`);
    writeFileSync(join(proc, 'sys/kernel/tainted'), '0\n');
    mkdirSync(join(proc, 'sys/kernel/random'), { recursive: true });
    this.reboot();
    writeFileSync(join(proc, 'cmdline'), 'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda ro\n');
    writeFileSync(join(this.dir, 'kmsg'), '');
    const loader: ModuleLoader = { insmod: (p) => this.insmod(p), rmmod: (m) => this.rmmod(m) };
    this.roots = {
      sys,
      proc,
      kmsg: join(this.dir, 'kmsg'),
      uid: o.uid ?? 0,
      state: join(this.dir, 'state'),
      config: join(this.dir, 'etc'),
      loader,
      kill: (pid, signal) => this.kill(pid, signal),
      afterWrite: () => this.retry(),
    };
    this.timer = setInterval(() => this.retry(), o.tickMs ?? 20);
    this.timer.unref();
  }

  /**
   * A new boot: a new boot_id, no module loaded, an empty kernel log (the state dir and the fake
   * /etc survive, like a disk). Tests use it for "the machine did not come back".
   */
  reboot(): void {
    const proc = join(this.dir, 'proc');
    this.boots++;
    writeFileSync(
      join(proc, 'sys/kernel/random/boot_id'),
      `${String(this.boots).padStart(8, '0')}-0000-4000-8000-000000000000\n`,
    );
    rmSync(join(this.dir, 'sys/module'), { recursive: true, force: true });
    mkdirSync(join(this.dir, 'sys/module'), { recursive: true });
    const lp = join(this.dir, 'sys/kernel/livepatch');
    if (existsSync(lp)) {
      rmSync(lp, { recursive: true, force: true });
      mkdirSync(lp);
    }
    writeFileSync(join(this.dir, 'kmsg'), '');
    this.transition = undefined;
  }

  private boots = 0;

  /** module names whose load is followed by this kernel message (a WARN, an oops) */
  readonly warnAfterLoad = new Map<string, string>();

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    rmSync(this.dir, { recursive: true, force: true });
  }

  log(text: string): void {
    appendFileSync(this.roots.kmsg, `6,${this.seq++},${this.seq * 1000},-;${text}\n`);
  }

  addTask(t: FakeTask): void {
    const tid = t.tid ?? t.pid;
    const task = { ...t, tid, switches: 0 };
    this.tasks.push(task);
    const dir = join(this.roots.proc, String(t.pid), 'task', String(tid));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'comm'), `${t.comm}\n`);
    const flags = t.kthread ? 0x00208040 : 0x00400100;
    writeFileSync(join(dir, 'stat'), `${tid} (${t.comm}) S 2 0 0 0 -1 ${flags} 0 0 0 0\n`);
    writeFileSync(join(dir, 'stack'), `${(t.stack ?? []).join('\n')}\n`);
    writeFileSync(join(dir, 'patch_state'), '-1\n');
    this.writeStatus(task);
  }

  private writeStatus(t: FakeTask & { tid: number; switches: number }): void {
    const dir = join(this.roots.proc, String(t.pid), 'task', String(t.tid));
    writeFileSync(
      join(dir, 'status'),
      `Name:\t${t.comm}\nState:\tS (sleeping)\nTgid:\t${t.pid}\nPid:\t${t.tid}\nvoluntary_ctxt_switches:\t${t.switches}\nnonvoluntary_ctxt_switches:\t0\n`,
    );
  }

  /** signals received, as `SIGSTOP 200` */
  readonly signals: string[] = [];

  /** SIGCONT makes a stopped user task leave the kernel: it no longer holds any function. */
  private kill(pid: number, signal: NodeJS.Signals): void {
    this.signals.push(`${signal} ${pid}`);
    if (signal === 'SIGCONT') for (const t of this.tasks) if (t.pid === pid && !t.kthread) t.holds = [];
  }

  private patchDir(m: string): string {
    return join(this.roots.sys, 'kernel/livepatch', m);
  }

  private setState(t: { pid: number; tid: number }, s: number): void {
    writeFileSync(join(this.roots.proc, String(t.pid), 'task', String(t.tid), 'patch_state'), `${s}\n`);
  }

  private state(t: { pid: number; tid: number }): number {
    return Number(
      readFileSync(join(this.roots.proc, String(t.pid), 'task', String(t.tid), 'patch_state'), 'utf8'),
    );
  }

  private async insmod(path: string): Promise<LoaderOutcome> {
    this.calls.push(`insmod ${path}`);
    const info = parseModinfo(readFileSync(path), path);
    const m = info.name;
    const fail = this.failing.get(m);
    if (fail !== undefined) {
      this.log(fail);
      return {
        ok: false,
        status: 1,
        output: `insmod: ERROR: could not insert module ${path}: Invalid parameters`,
      };
    }
    if (existsSync(join(this.roots.sys, 'module', m))) return { ok: false, status: 1, output: 'File exists' };
    mkdirSync(join(this.roots.sys, 'module', m), { recursive: true });
    writeFileSync(join(this.roots.sys, 'module', m, 'refcnt'), '1\n');
    writeFileSync(join(this.roots.sys, 'module', m, 'taint'), info.livepatch ? 'OEK\n' : 'OE\n');
    const spec = this.specs.get(m);
    if (!info.livepatch || !spec) return { ok: true, status: 0, output: '' };
    const d = this.patchDir(m);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'enabled'), '1\n');
    writeFileSync(join(d, 'transition'), '1\n');
    writeFileSync(join(d, 'force'), '');
    for (const [obj, funcs] of Object.entries(spec.objects)) {
      mkdirSync(join(d, obj), { recursive: true });
      writeFileSync(join(d, obj, 'patched'), '1\n');
      for (const f of funcs) mkdirSync(join(d, obj, `${f},0`), { recursive: true });
    }
    writeFileSync(join(this.roots.proc, 'sys/kernel/tainted'), `${(1 << 12) | (1 << 13) | (1 << 15)}\n`);
    this.log(`livepatch: enabling patch '${m}'`);
    this.log(`livepatch: '${m}': starting patching transition`);
    const warn = this.warnAfterLoad.get(m);
    if (warn !== undefined) for (const line of warn.split('\n')) this.log(line);
    for (const t of this.tasks) this.setState(t, 0);
    this.transition = { patch: m, target: 1, retries: 0, signalled: 0 };
    return { ok: true, status: 0, output: '' };
  }

  private async rmmod(m: string): Promise<LoaderOutcome> {
    this.calls.push(`rmmod ${m}`);
    const dir = join(this.roots.sys, 'module', m);
    if (!existsSync(dir))
      return { ok: false, status: 1, output: `rmmod: ERROR: Module ${m} is not currently loaded` };
    if (existsSync(this.patchDir(m)))
      return { ok: false, status: 1, output: `rmmod: ERROR: Module ${m} is in use` };
    rmSync(dir, { recursive: true, force: true });
    return { ok: true, status: 0, output: '' };
  }

  /** A write of 0 to an idle patch's `enabled` starts the unpatching transition (the fake polls for it). */
  private noticeDisable(): void {
    for (const m of this.specs.keys()) {
      const d = this.patchDir(m);
      if (!existsSync(d)) continue;
      if (
        readFileSync(join(d, 'enabled'), 'utf8').trim() === '0' &&
        readFileSync(join(d, 'transition'), 'utf8').trim() === '0'
      ) {
        writeFileSync(join(d, 'transition'), '1\n');
        this.log(`livepatch: '${m}': starting unpatching transition`);
        for (const t of this.tasks) this.setState(t, 1);
        this.transition = { patch: m, target: 0, retries: 0, signalled: 0 };
        return;
      }
    }
  }

  /** One klp_try_complete_transition retry. */
  private retry(): void {
    if (!this.transition) this.noticeDisable();
    const tr = this.transition;
    if (!tr) return;
    const d = this.patchDir(tr.patch);
    if (!existsSync(d)) return;
    const enabled = readFileSync(join(d, 'enabled'), 'utf8').trim() === '1';
    const wanted: 0 | 1 = enabled ? 1 : 0;
    if (wanted !== tr.target) {
      // klp_reverse_transition: the target flips, tasks already switched must switch back
      this.log(
        `livepatch: '${tr.patch}': reversing transition from ${tr.target ? 'patching' : 'unpatching'}`,
      );
      tr.target = wanted;
      tr.retries = 0;
    }
    const funcs = new Set(Object.values(this.specs.get(tr.patch)?.objects ?? {}).flat());
    if (readFileSync(join(d, 'force'), 'utf8').trim() === '1') {
      this.log('livepatch: forcing remaining tasks to the patched state');
      for (const t of this.tasks) this.setState(t, tr.target);
      writeFileSync(join(d, 'force'), '');
    }
    let complete = true;
    for (const t of this.tasks) {
      if (this.state(t) === tr.target) continue;
      // a task holds the transition only while it sleeps in a function the patch replaces
      if (tr.target === 1 && (t.holds ?? []).some((f) => funcs.has(f))) complete = false;
      else this.setState(t, tr.target);
    }
    if (!complete) {
      tr.retries++;
      if (tr.retries % this.signalEvery === 0) {
        tr.signalled++;
        if (tr.signalled === 1) this.log('livepatch: signaling remaining tasks');
        for (const t of this.tasks) {
          if (this.state(t) !== tr.target && t.kthread) {
            t.switches++;
            this.writeStatus(t);
          }
        }
      }
      return;
    }
    this.log(`livepatch: '${tr.patch}': ${tr.target ? 'patching' : 'unpatching'} complete`);
    for (const t of this.tasks) this.setState(t, -1);
    writeFileSync(join(d, 'transition'), '0\n');
    this.transition = undefined;
    if (tr.target === 0) {
      rmSync(d, { recursive: true, force: true });
      writeFileSync(join(this.roots.sys, 'module', tr.patch, 'refcnt'), '0\n');
    } else if (this.specs.get(tr.patch)?.replace) {
      for (const other of this.specs.keys()) {
        if (other !== tr.patch && existsSync(this.patchDir(other))) {
          rmSync(this.patchDir(other), { recursive: true, force: true });
          writeFileSync(join(this.roots.sys, 'module', other, 'refcnt'), '0\n');
        }
      }
    }
  }

  writeModule(name: string, opts: { livepatch?: boolean; release?: string } = {}): string {
    const path = join(this.dir, `${name.replace(/_/g, '-')}.ko`);
    const fields: Record<string, string> = {
      license: 'GPL',
      name,
      vermagic: `${opts.release ?? this.release} SMP preempt mod_unload modversions `,
    };
    if (opts.livepatch !== false) fields.livepatch = 'Y';
    writeFakeModule(path, fields);
    return path;
  }
}

/** A manifest for a fake module of `k`, as `suture build` would write it (for store and apply tests). */
export function fakeManifest(
  k: FakeKernel,
  file: string,
  name: string,
  over: Partial<Manifest['kernel']> = {},
): Manifest {
  return {
    schema: 1,
    name: name.replace(/^livepatch_/, ''),
    version: '1',
    kernel: { release: k.release, buildId: k.buildId, ...over },
    replace: false,
    objects: [{ name: 'vmlinux', functions: [{ name: 'meminfo_proc_show', sympos: 0, change: 'changed' }] }],
    module: {
      file: file.split('/').pop() as string,
      sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
      name,
    },
    source: {},
    cves: [],
    tool: { name: 'suture', version: '0.1.0' },
  };
}

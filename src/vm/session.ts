/*
 * A running VM: QEMU, its console, and the command channel to the guest's /init (see guest.ts).
 *
 * Lifecycle: assemble the initramfs in a private work directory, listen on a Unix socket, start QEMU
 * (which connects to the socket as the virtio-serial port suture.ctl), wait for the guest's READY
 * marker, then serve `exec` calls one at a time. The session ends when the caller closes it, when the
 * hard timeout kills QEMU, or when the kernel dies (panic → QEMU exits); pending commands then fail
 * with the reason and the trace (end.ts). Sessions share nothing but the cache, so several run side
 * by side.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import { SutureError } from '../diagnostic.js';
import { endError, tail, VmBootError, type VmEnd } from './end.js';
import { MARK } from './guest.js';
import { assembleInitramfs, type Initramfs } from './initramfs.js';
import type { ExecOptions, ExecResult, VmOptions } from './options.js';
import { findProblems, type KernelProblem } from './problems.js';
import { checkKernelImage, checkQemu, qemuArgs, spawnQemu } from './qemu.js';

const DEFAULT_SESSION_TIMEOUT = 600_000;
const DEFAULT_BOOT_TIMEOUT = 180_000;
const DEFAULT_EXEC_TIMEOUT = 120_000;
/** how long after the guest should have killed a command the host gives up on it */
const EXEC_GRACE = 10_000;

interface Pending {
  id: string;
  resolve: (r: { exitCode: number; output: string }) => void;
  reject: (e: Error) => void;
}

/** Everything QEMU printed on the console that the kernel wrote (timestamped lines). */
export function kernelLines(console: string): string {
  return console
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => /^\[\s*\d+\.\d+\]/.test(l))
    .join('\n');
}

export class VmSession {
  readonly nonce = randomBytes(8).toString('hex');
  readonly workDir: string;
  initramfs!: Initramfs;
  /** ms from starting QEMU until the guest served commands */
  bootMs = 0;
  private consoleText = '';
  private qemuStderr = '';
  private child?: ChildProcess;
  private server?: Server;
  private socket?: Socket;
  private ctl = '';
  private ready?: { errors: number };
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private current?: Pending;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private hardTimer?: NodeJS.Timeout;
  private startedAt = 0;
  end: VmEnd = { kind: 'running' };
  readonly exited: Promise<VmEnd>;
  private markExited!: (e: VmEnd) => void;

  constructor(readonly opts: VmOptions) {
    this.workDir = mkdtempSync(join(tmpdir(), 'suture-vm-'));
    this.exited = new Promise((r) => {
      this.markExited = r;
    });
  }

  /** All console (ttyS0) text so far: kernel messages and what /init printed. */
  get console(): string {
    return this.consoleText;
  }

  /** Oops, panic, BUG and WARNING reports seen on the console so far. */
  get problems(): KernelProblem[] {
    return findProblems(this.consoleText);
  }

  get alive(): boolean {
    return this.end.kind === 'running';
  }

  /** @internal used by bootVm */
  async start(): Promise<void> {
    const o = this.opts;
    checkQemu();
    checkKernelImage(o.kernel.vmlinuz);
    // the command channel is a virtio-serial port (qemu.ts): its drivers load first
    const disk = o.disk;
    const modules = ['virtio_pci', 'virtio_console', ...(disk ? ['virtio_blk'] : []), ...(o.modules ?? [])];
    if (o.net && !disk) modules.push('virtio_net');
    this.initramfs = await assembleInitramfs({
      kernel: o.kernel,
      guest: { nonce: this.nonce, mode: disk ? 'disk' : 'agent', net: o.net === true && !disk },
      modules,
      ...(o.placeModules ? { placeModules: o.placeModules } : {}),
      ...(o.files ? { files: o.files } : {}),
      withSuture: o.withSuture === true && !disk,
      ...(o.nodeFlags ? { nodeFlags: o.nodeFlags } : {}),
      workDir: this.workDir,
    });
    const sock = join(this.workDir, 'ctl.sock');
    this.server = createServer((s) => this.attach(s));
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(sock, () => res());
    });
    const args = qemuArgs({
      vmlinuz: o.kernel.vmlinuz,
      initrd: this.initramfs.path,
      memoryMb: o.memoryMb ?? (o.withSuture ? 1024 : 512),
      ...(disk
        ? {
            disk,
            ...(o.media ? { media: o.media } : {}),
            append: `root=/dev/vda suture.nonce=${this.nonce} ${o.append ?? ''}`.trim(),
          }
        : o.append
          ? { append: o.append }
          : {}),
      net: o.net === true,
      controlSocket: sock,
      interactive: false,
    });
    this.startedAt = performance.now();
    const child = spawnQemu(args, 'pipe');
    this.child = child;
    const dec = new StringDecoder('utf8');
    child.stdout!.on('data', (b: Buffer) => this.onConsole(dec.write(b)));
    child.stderr!.on('data', (b: Buffer) => {
      this.qemuStderr += b.toString();
    });
    child.once('error', (e) => this.finish({ kind: 'exited', code: null, signal: String(e) }));
    child.once('exit', (code, signal) => {
      this.onConsole(dec.end());
      this.finish(this.end.kind === 'running' ? { kind: 'exited', code, signal } : this.end);
    });
    const limit = o.timeoutMs ?? DEFAULT_SESSION_TIMEOUT;
    this.hardTimer = setTimeout(() => {
      this.end = { kind: 'timeout', afterMs: limit };
      this.kill();
    }, limit);
    this.hardTimer.unref();
    await this.waitReady(Math.min(limit, o.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT));
  }

  private onConsole(chunk: string): void {
    if (!chunk) return;
    this.consoleText += chunk;
    this.opts.onConsole?.(chunk);
  }

  private attach(s: Socket): void {
    if (this.socket) {
      s.destroy();
      return;
    }
    this.socket = s;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      if (process.env.SUTURE_VM_DEBUG) process.stderr.write(`[ctl] ${JSON.stringify(d)}\n`);
      this.ctl += d;
      this.parse();
    });
    s.on('error', () => {});
  }

  private parse(): void {
    if (!this.ready) {
      const m = new RegExp(`${MARK}SUTURE-READY ${this.nonce} (\\d+)${MARK}\\n?`).exec(this.ctl);
      if (!m) return;
      this.ready = { errors: Number(m[1]) };
      this.ctl = this.ctl.slice(m.index + m[0].length);
      this.bootMs = performance.now() - this.startedAt;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
    }
    const p = this.current;
    if (!p) return;
    const begin = `${MARK}SUTURE-BEGIN ${this.nonce} ${p.id}${MARK}`;
    const b = this.ctl.indexOf(begin);
    if (b < 0) return;
    const end = new RegExp(`${MARK}SUTURE-END ${this.nonce} ${p.id} (\\d+)${MARK}\\n?`);
    const rest = this.ctl.slice(b + begin.length);
    const m = end.exec(rest);
    if (!m) return;
    this.ctl = rest.slice(m.index + m[0].length);
    this.current = undefined;
    p.resolve({ exitCode: Number(m[1]), output: rest.slice(0, m.index) });
  }

  /** What command `id` printed so far (its BEGIN marker seen, no END yet). */
  private partialOutput(id: string): string {
    const begin = `${MARK}SUTURE-BEGIN ${this.nonce} ${id}${MARK}`;
    const b = this.ctl.indexOf(begin);
    return b < 0 ? '' : this.ctl.slice(b + begin.length);
  }

  private waitReady(ms: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.end = { kind: 'timeout', afterMs: ms };
        this.kill();
      }, ms);
      this.readyWaiters.push({
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    }).then(async () => {
      if (this.ready && this.ready.errors > 0) {
        const r = await this.exec('cat /tmp/suture-init.err; dmesg | tail -n 20', { timeoutMs: 20_000 });
        await this.close();
        throw new VmBootError(
          'VM-BOOT-INIT',
          'the VM came up but its set-up failed (modules or network)',
          this.consoleText,
          this.problems,
          this.bootMs,
          { detail: tail(r.output, 30), hint: 'check the module names and that they belong to this kernel' },
        );
      }
    });
  }

  private deathError(during: string, output = ''): VmBootError {
    const seen = {
      console: this.consoleText,
      problems: this.problems,
      qemuStderr: this.qemuStderr,
      elapsedMs: Math.round(performance.now() - this.startedAt),
    };
    return endError(this.end, during, seen, output);
  }

  private finish(end: VmEnd): void {
    if (this.end.kind === 'running' || this.end.kind !== end.kind) this.end = end;
    if (this.hardTimer) clearTimeout(this.hardTimer);
    const during = this.ready ? 'while a command ran' : 'before the guest was ready';
    for (const w of this.readyWaiters.splice(0)) w.reject(this.deathError(during));
    if (this.current) {
      const p = this.current;
      this.current = undefined;
      p.reject(this.deathError(during, this.partialOutput(p.id)));
    }
    this.socket?.destroy();
    this.server?.close(() => {});
    this.server = undefined;
    rmSync(this.workDir, { recursive: true, force: true });
    this.markExited(this.end);
  }

  /**
   * Run a shell command (busybox sh) in the guest and wait for it. Commands run one at a time in
   * order; each starts in / with stdin from /dev/null. Rejects when the VM dies or is killed meanwhile.
   */
  exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const run = this.queue.then(() => this.execNow(cmd, opts));
    this.queue = run.catch(() => {});
    return run;
  }

  private async execNow(cmd: string, opts: ExecOptions): Promise<ExecResult> {
    if (!this.alive || !this.socket || !this.ready) throw this.deathError('before the command was sent');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT;
    const id = `c${++this.seq}`;
    const consoleAt = this.consoleText.length;
    const t0 = performance.now();
    const r = await new Promise<{ exitCode: number; output: string }>((resolve, reject) => {
      const t = setTimeout(() => {
        if (this.current?.id !== id) return;
        this.current = undefined;
        reject(
          new SutureError({
            code: 'VM-EXEC-TIMEOUT',
            message: `command did not finish within ${timeoutMs} ms and the guest did not stop it (a process in uninterruptible sleep?)`,
            detail: [
              `command: ${cmd.replace(/\s*\n\s*/g, '; ')}`,
              `the guest ${this.ctl.includes(`SUTURE-BEGIN ${this.nonce} ${id}${MARK}`) ? 'started it' : 'never said it started it'}`,
              'its output so far:',
              ...tail(this.partialOutput(id), 15),
              'the console meanwhile:',
              ...tail(this.consoleText.slice(consoleAt), 15),
            ],
          }),
        );
      }, timeoutMs + EXEC_GRACE);
      this.current = {
        id,
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
      this.socket!.write(`${id} ${secs} ${Buffer.from(cmd).toString('base64')}\n`);
      this.parse();
    });
    const durationMs = performance.now() - t0;
    const consoleDuring = this.consoleText.slice(consoleAt);
    return {
      exitCode: r.exitCode,
      output: r.output,
      timedOut: r.exitCode === 137 && durationMs >= timeoutMs - 1000,
      durationMs,
      problems: findProblems(this.consoleText).filter((p) => p.offset >= consoleAt),
      console: consoleDuring,
    };
  }

  /** The kernel log (dmesg) of the running guest. */
  async dmesg(): Promise<string> {
    return (await this.exec('dmesg', { timeoutMs: 30_000 })).output;
  }

  private kill(): void {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const k = setTimeout(() => c.kill('SIGKILL'), 3000);
    k.unref();
    c.once('exit', () => clearTimeout(k));
  }

  /** Kill QEMU (the guest is throwaway) and wait until it is gone. Safe to call twice. */
  async close(): Promise<VmEnd> {
    if (this.end.kind === 'running') {
      this.end = { kind: 'closed' };
      if (this.child) this.kill();
      else this.finish(this.end);
    }
    return this.exited;
  }
}

/** Boot a VM that stays up until `close()`. Throws VmBootError when the guest never becomes usable. */
export async function bootVm(opts: VmOptions): Promise<VmSession> {
  const s = new VmSession(opts);
  try {
    await s.start();
  } catch (e) {
    await s.close();
    throw e;
  }
  return s;
}

/*
 * Object pairs compiled here with gcc from small C files, for objdiff's tests: the kernel's code model
 * and ftrace flags (-mcmodel=kernel -pg -mfentry -mrecord-mcount) and, unless a test asks otherwise,
 * one section per function and datum as kbuild builds a livepatch's units. Each test file gets its own
 * scratch directory, removed when the file's tests end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export const KERNEL_FLAGS = [
  '-O2',
  '-fno-pic',
  '-mcmodel=kernel',
  '-mno-red-zone',
  '-fno-asynchronous-unwind-tables',
  '-pg',
  '-mfentry',
  '-mrecord-mcount',
];
export const SECTIONS = ['-ffunction-sections', '-fdata-sections'];

export interface CompileOptions {
  /** flags after KERNEL_FLAGS (default SECTIONS; `[]` for one .text for all) */
  flags?: readonly string[];
  /** also write gcc's -aux-info prototypes to `<object>.aux` */
  auxInfo?: boolean;
}

/** A scratch directory for one test file and a gcc that compiles C text into objects in it. */
export class ScratchGcc {
  readonly dir: string;
  private n = 0;

  constructor(name: string) {
    const dir = mkdtempSync(join(tmpdir(), `suture-${name}-test-`));
    this.dir = dir;
    after(() => rmSync(dir, { recursive: true, force: true }));
  }

  /** Compile one unit; returns the object's path (its prototypes, with auxInfo, at `<path>.aux`). */
  compile(source: string, opts: CompileOptions = {}): string {
    const base = join(this.dir, `u${this.n++}`);
    writeFileSync(`${base}.c`, source);
    const aux = opts.auxInfo ? ['-aux-info', `${base}.o.aux`] : [];
    execFileSync('gcc', [
      ...KERNEL_FLAGS,
      ...(opts.flags ?? SECTIONS),
      ...aux,
      '-c',
      `${base}.c`,
      '-o',
      `${base}.o`,
    ]);
    return `${base}.o`;
  }
}

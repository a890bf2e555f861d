/*
 * Test fixtures for VM tests: small kernel modules built against the target with kbuild, and the
 * binary edits that make a module look built for another kernel.
 *
 * Not used by the product. The livepatch acceptance test builds its module through `suture new` and
 * `suture module build`; these fixtures build modules only tests need (one that oopses on load, the
 * blog's sample to be disguised as another kernel's) with kbuild directly, since vm/ may not import klp/.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { KernelTarget } from '../../kernel/target.js';
import type { Manifest } from '../../manifest/manifest.js';

/** Build `<name>.ko` from one C file in `dir` with kbuild; returns the .ko path. Throws with make's output. */
export function buildTestModule(kernel: KernelTarget, dir: string, name: string, source: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.c`), source);
  writeFileSync(join(dir, 'Kbuild'), `obj-m := ${name}.o\n`);
  const r = spawnSync('make', ['-C', kernel.sourceTree, `M=${dir}`, '-j2', 'modules'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kbuild of ${name} failed:\n${r.stdout}\n${r.stderr}`);
  return join(dir, `${name}.ko`);
}

/** The blog's first example: replace cmdline_proc_show. */
export const CMDLINE_LIVEPATCH = `#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\\n", "this has been live patched");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show, }, { }
};

static struct klp_object objs[] = { { .funcs = funcs, }, { } };

static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs, };

static int livepatch_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_exit(void)
{
}

module_init(livepatch_init);
module_exit(livepatch_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
`;

/**
 * A livepatch replacing `oldName` (a seq_file show function of vmlinux, by default /proc/cmdline's)
 * with one that prints `mark`; an `oldName` the kernel does not have makes a livepatch whose load
 * fails (klp_enable_patch cannot find the symbol).
 */
export function markerLivepatch(mark: string, oldName = 'cmdline_proc_show'): string {
  return `// SPDX-License-Identifier: GPL-2.0
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int marker_show(struct seq_file *m, void *v)
{
	seq_puts(m, "${mark}\\n");
	return 0;
}

static struct klp_func marker_funcs[] = { { .old_name = "${oldName}", .new_func = marker_show }, {} };
static struct klp_object marker_objs[] = { { .funcs = marker_funcs }, {} }; /* .name NULL: vmlinux */
static struct klp_patch marker_patch = { .mod = THIS_MODULE, .objs = marker_objs };

static int __init marker_init(void)
{
	return klp_enable_patch(&marker_patch);
}

static void __exit marker_exit(void)
{
}

module_init(marker_init);
module_exit(marker_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
`;
}

/** The manifest `suture build` would write for a hand-built livepatch of one vmlinux function. */
export function markerManifest(
  kernel: KernelTarget,
  ko: string,
  name: string,
  oldName = 'cmdline_proc_show',
): Manifest {
  return {
    schema: 1,
    name,
    version: '1',
    kernel: { release: kernel.release, buildId: kernel.buildId, debianVersion: kernel.debianVersion },
    replace: false,
    objects: [
      {
        name: 'vmlinux',
        functions: [{ name: oldName, sympos: 0, file: 'fs/proc/cmdline.c', change: 'changed' }],
      },
    ],
    module: {
      file: basename(ko),
      sha256: createHash('sha256').update(readFileSync(ko)).digest('hex'),
      name: basename(ko, '.ko').replaceAll('-', '_'),
    },
    source: { description: `test livepatch ${name}: replaces ${oldName}` },
    cves: [],
    tool: { name: 'suture', version: '0.1.0' },
  };
}

/** A module whose init writes through a NULL pointer: a real oops (the kernel survives, insmod dies). */
export const OOPS_MODULE = `#include <linux/module.h>
#include <linux/kernel.h>

static int *volatile target;

static int __init oops_init(void)
{
	pr_info("suture_oops: about to write through %px\\n", target);
	*target = 42;
	return 0;
}

module_init(oops_init);
MODULE_LICENSE("GPL");
`;

/** A module whose init prints a WARNING splat and loads fine. */
export const WARN_MODULE = `#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/bug.h>

static int __init warn_init(void)
{
	WARN(1, "suture_warn: deliberate warning\\n");
	return 0;
}

static void __exit warn_exit(void)
{
}

module_init(warn_init);
module_exit(warn_exit);
MODULE_LICENSE("GPL");
`;

/**
 * Rewrite a module's vermagic (in .modinfo) to `vermagic`, in place and at the same size (NUL padded).
 * The kernel compares vermagic on load; a different configuration string is what a module built for
 * another kernel carries (e.g. Debian 11's `5.10.0-30-cloud-amd64 SMP mod_unload modversions `).
 */
export function withVermagic(ko: string, out: string, vermagic: string): string {
  const b = Buffer.from(readFileSync(ko));
  const key = Buffer.from('\0vermagic=');
  const at = b.indexOf(key);
  if (at < 0) throw new Error(`${ko} has no vermagic`);
  const start = at + key.length;
  const end = b.indexOf(0, start);
  const old = b.subarray(start, end).toString();
  const rep = Buffer.from(vermagic);
  if (rep.length > end - start) throw new Error(`vermagic ${vermagic} longer than ${old}`);
  b.fill(0, start, end);
  rep.copy(b, start);
  writeFileSync(out, b);
  return old;
}

/**
 * Change the CRC the module recorded for `symbol` in __versions (struct modversion_info: u64 crc,
 * char name[56]), as if it was built against a kernel whose ABI for that symbol differs.
 */
export function withSymbolCrc(ko: string, out: string, symbol: string): void {
  const b = Buffer.from(readFileSync(ko));
  const name = Buffer.alloc(56);
  name.write(symbol);
  const at = b.indexOf(name);
  if (at < 8) throw new Error(`${ko} records no CRC for ${symbol}`);
  b.writeBigUInt64LE(b.readBigUInt64LE(at - 8) ^ 0x5a5a5a5an, at - 8);
  writeFileSync(out, b);
}

/*
 * A hand-written livepatch module, ready to edit: the shape of the kernel's livepatch sample.
 *
 * One klp_func per replaced function (old_name → new_func), grouped in a klp_object (name NULL = the
 * function lives in vmlinux; otherwise the module that defines it), wrapped in a klp_patch that the
 * module's init hands to klp_enable_patch(). MODULE_INFO(livepatch, "Y") tells the module loader this is
 * a livepatch (it taints the kernel with TAINT_LIVEPATCH and allows the klp relocations).
 *
 * For `cmdline_proc_show` the body is a complete example: /proc/cmdline reads
 * "this has been live patched". For any other function the replacement is a TODO the author fills in
 * with the fixed code, keeping the original signature exactly.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../diagnostic.js';

export interface SkeletonOptions {
  /** the kernel function to replace */
  symbol: string;
  /** module name; default `livepatch_<symbol>` */
  name?: string;
  /** the module defining the function (klp_object.name); default vmlinux */
  object?: string;
}

export interface SkeletonFiles {
  name: string;
  files: Record<string, string>;
}

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function body(symbol: string): { includes: string[]; fn: string } {
  const newName = `livepatch_${symbol}`;
  if (symbol === 'cmdline_proc_show') {
    return {
      includes: ['#include <linux/seq_file.h>'],
      fn: [
        `static int ${newName}(struct seq_file *m, void *v)`,
        '{',
        '\tseq_printf(m, "%s\\n", "this has been live patched");',
        '\treturn 0;',
        '}',
      ].join('\n'),
    };
  }
  return {
    includes: [],
    fn: [
      `/*`,
      ` * TODO: the fixed ${symbol}().`,
      ` * Copy the function from the target kernel's source and apply the fix. Keep its signature and`,
      ` * return type exactly: the kernel calls this in place of the original, with the same arguments.`,
      ` * Static functions it calls are not exported: call exported ones, or declare what you need.`,
      ` * Until then the module refuses to build: an empty replacement would silently disable ${symbol}.`,
      ` */`,
      `#error "TODO: write the fixed ${symbol}() as ${newName}() below, then delete this line"`,
      `static void ${newName}(void)`,
      '{',
      '}',
    ].join('\n'),
  };
}

/** The files of a livepatch module replacing `symbol`. */
export function livepatchSkeleton(opts: SkeletonOptions): SkeletonFiles {
  if (!C_IDENT.test(opts.symbol)) {
    fail('SKELETON-BAD-SYMBOL', `\`${opts.symbol}\` is not a C function name`, {
      hint: 'give the kernel function to replace, e.g. --function cmdline_proc_show',
    });
  }
  if (opts.object !== undefined && !/^[A-Za-z0-9_-]+$/.test(opts.object)) {
    fail('SKELETON-BAD-OBJECT', `\`${opts.object}\` is not a module name`);
  }
  const name = opts.name ?? `livepatch_${opts.symbol}`;
  if (!C_IDENT.test(name.replace(/-/g, '_')) || name.length > 55) {
    fail('SKELETON-BAD-NAME', `\`${name}\` is not a valid module name`, {
      why: 'a module name becomes a C identifier and a sysfs directory (/sys/kernel/livepatch/<name>)',
      hint: 'use letters, digits, - and _, at most 55 characters',
    });
  }
  const b = body(opts.symbol);
  const objectName =
    opts.object === undefined
      ? '\t\t/* name NULL: the function is in vmlinux */'
      : `\t\t.name = "${opts.object}",`;
  const c = [
    '// SPDX-License-Identifier: GPL-2.0',
    `/* Livepatch module ${name}: replaces ${opts.symbol}() in the running kernel. Made by \`suture new\`. */`,
    '#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt',
    '#include <linux/module.h>',
    '#include <linux/kernel.h>',
    '#include <linux/livepatch.h>',
    '',
    ...b.includes,
    b.fn,
    '',
    'static struct klp_func funcs[] = {',
    '\t{',
    `\t\t.old_name = "${opts.symbol}",`,
    `\t\t.new_func = livepatch_${opts.symbol},`,
    '\t}, { }',
    '};',
    '',
    'static struct klp_object objs[] = {',
    '\t{',
    objectName,
    '\t\t.funcs = funcs,',
    '\t}, { }',
    '};',
    '',
    'static struct klp_patch patch = {',
    '\t.mod = THIS_MODULE,',
    '\t.objs = objs,',
    '};',
    '',
    'static int livepatch_init(void)',
    '{',
    '\treturn klp_enable_patch(&patch);',
    '}',
    '',
    'static void livepatch_exit(void)',
    '{',
    '}',
    '',
    'module_init(livepatch_init);',
    'module_exit(livepatch_exit);',
    'MODULE_LICENSE("GPL");',
    'MODULE_INFO(livepatch, "Y");',
    '',
  ].join('\n');
  const kbuild = `obj-m := ${name}.o\n`;
  const makefile = [
    '# Build with `suture module build . --kernel <release>`, or by hand against a prepared tree:',
    '#   make KDIR=<kernel source tree>',
    'KDIR ?= /lib/modules/$(shell uname -r)/build',
    '',
    'default:',
    '\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules',
    '',
    'clean:',
    '\t$(MAKE) -C $(KDIR) M=$(CURDIR) clean',
    '',
  ].join('\n');
  return { name, files: { [`${name}.c`]: c, Kbuild: kbuild, Makefile: makefile } };
}

/** Write the skeleton into `dir` (created if needed); refuses to overwrite existing files. */
export function writeSkeleton(dir: string, opts: SkeletonOptions): SkeletonFiles {
  const s = livepatchSkeleton(opts);
  if (existsSync(dir)) {
    const clash = Object.keys(s.files).filter((f) => existsSync(join(dir, f)));
    if (clash.length > 0) {
      fail('SKELETON-EXISTS', `${dir} already has ${clash.join(', ')}`, {
        why: 'suture new never overwrites files',
        hint: 'choose an empty directory',
        detail: readdirSync(dir),
      });
    }
  }
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(s.files)) writeFileSync(join(dir, f), text, { flag: 'wx' });
  return s;
}

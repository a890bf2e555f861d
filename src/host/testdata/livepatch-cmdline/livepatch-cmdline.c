// SPDX-License-Identifier: GPL-2.0
/*
 * The blog's first livepatch: cmdline_proc_show() (fs/proc/cmdline.c) replaced by a version that
 * prints a fixed line, so `cat /proc/cmdline` shows whether the patch is in effect.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int livepatch_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", "this has been live patched");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show },
	{}
};

static struct klp_object objs[] = {
	{ /* name NULL: vmlinux */ .funcs = funcs },
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_cmdline_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_cmdline_exit(void)
{
}

module_init(livepatch_cmdline_init);
module_exit(livepatch_cmdline_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");

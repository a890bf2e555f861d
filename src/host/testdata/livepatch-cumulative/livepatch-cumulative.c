// SPDX-License-Identifier: GPL-2.0
/*
 * A cumulative livepatch (klp_patch.replace = true): it carries every fix of the series, so loading
 * it atomically replaces all earlier livepatches. It patches cmdline_proc_show() like the cmdline
 * patch, with another text, so `cat /proc/cmdline` tells which patch is in effect.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int livepatch_cumulative_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s\n", "cumulative patch v2 in effect");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = livepatch_cumulative_cmdline_proc_show },
	{}
};

static struct klp_object objs[] = {
	{ .funcs = funcs },
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.replace = true,
};

static int livepatch_cumulative_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_cumulative_exit(void)
{
}

module_init(livepatch_cumulative_init);
module_exit(livepatch_cumulative_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");

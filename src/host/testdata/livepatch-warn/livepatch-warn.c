// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch that hurts the kernel on purpose, for the crash-loop guard's VM test (guard.vm.test.ts):
 * it replaces version_proc_show() (fs/proc/version.c) and, once klp_enable_patch() has registered
 * it, its init raises a WARN — what a patch touching a broken invariant would trigger. Suture must
 * mark it bad and never load it again.
 */
#include <linux/bug.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int livepatch_version_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "livepatch_warn is loaded\n");
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "version_proc_show", .new_func = livepatch_version_proc_show },
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

static int livepatch_warn_init(void)
{
	int ret = klp_enable_patch(&patch);

	WARN(ret == 0, "livepatch_warn: a WARN on purpose right after klp_enable_patch\n");
	return ret;
}

static void livepatch_warn_exit(void)
{
}

module_init(livepatch_warn_init);
module_exit(livepatch_warn_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");

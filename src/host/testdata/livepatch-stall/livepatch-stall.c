// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch for the suture_stall module (klp_object.name = "suture_stall"): it replaces
 * suture_stall_sleeper_wait(), the function the module's kthread sleeps in forever, so the patching
 * transition can never complete by itself.
 */
#include <linux/kthread.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/sched.h>

static int livepatch_suture_stall_sleeper_wait(void)
{
	while (!kthread_should_stop())
		schedule_timeout_interruptible(60 * HZ);
	return 0;
}

static struct klp_func funcs[] = {
	{ .old_name = "suture_stall_sleeper_wait", .new_func = livepatch_suture_stall_sleeper_wait },
	{}
};

static struct klp_object objs[] = {
	{ .name = "suture_stall", .funcs = funcs },
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int livepatch_stall_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_stall_exit(void)
{
}

module_init(livepatch_stall_init);
module_exit(livepatch_stall_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");

// SPDX-License-Identifier: GPL-2.0
/*
 * A livepatch for the suture_stall module that replaces suture_stall_reader_wait(), where a user
 * process reading /proc/suture_stall sleeps. Unlike the kthread of livepatch-stall, such a task can
 * be switched: any signal (SIGSTOP from `suture apply --signal`, or the kernel's own fake signal)
 * sends it through the exit-to-user path, where the kernel switches it, and the read restarts in the
 * new function. The new function waits on its own queue: nobody wakes either.
 */
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/wait.h>

static DECLARE_WAIT_QUEUE_HEAD(livepatch_reader_queue);

static int livepatch_suture_stall_reader_wait(void)
{
	return wait_event_interruptible(livepatch_reader_queue, false);
}

static struct klp_func funcs[] = {
	{ .old_name = "suture_stall_reader_wait", .new_func = livepatch_suture_stall_reader_wait },
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

static int livepatch_reader_init(void)
{
	return klp_enable_patch(&patch);
}

static void livepatch_reader_exit(void)
{
}

module_init(livepatch_reader_init);
module_exit(livepatch_reader_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");

// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose kernel thread sleeps inside one of its own functions, for the stalled-transition
 * test: the thread `suture_stall` spends its life in suture_stall_sleeper_wait(), sleeping
 * interruptibly for 60 s at a time. A livepatch replacing that function cannot switch the thread
 * (the function is always on its stack), so the transition stalls until forced.
 *
 * early_wakeups counts sleeps that ended before their 60 s without kthread_stop(): the kernel's
 * signalling round (klp_send_signals → wake_up_state(task, TASK_INTERRUPTIBLE)) shows up here.
 *
 * The same module gives user space a way to sleep in one of its functions: read(2) on
 * /proc/suture_stall waits in suture_stall_reader_wait() until a signal arrives (nobody ever wakes
 * the queue until the module goes away). interrupted_reads counts the waits a signal ended (the
 * read is then restarted).
 *
 * Unloading wakes any reader still waiting (the read then fails with EIO): remove_proc_entry()
 * waits, uninterruptibly, for every read in flight, so a reader that outlived its `kill` would
 * otherwise hang rmmod for good.
 */
#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/wait.h>

static int early_wakeups;
module_param(early_wakeups, int, 0444);
MODULE_PARM_DESC(early_wakeups, "sleeps cut short by a wake-up that was not kthread_stop()");

static int interrupted_reads;
module_param(interrupted_reads, int, 0444);
MODULE_PARM_DESC(interrupted_reads, "reads of /proc/suture_stall whose wait a signal ended");

static struct task_struct *sleeper;
static DECLARE_WAIT_QUEUE_HEAD(reader_queue);
static bool unloading;

noinline int suture_stall_reader_wait(void)
{
	return wait_event_interruptible(reader_queue, READ_ONCE(unloading));
}

static ssize_t suture_stall_read(struct file *file, char __user *buf, size_t len, loff_t *pos)
{
	int ret = suture_stall_reader_wait();

	if (ret) {
		WRITE_ONCE(interrupted_reads, READ_ONCE(interrupted_reads) + 1);
		return ret;
	}
	return -EIO;
}

static const struct proc_ops suture_stall_proc_ops = {
	.proc_read = suture_stall_read,
};

noinline int suture_stall_sleeper_wait(void)
{
	while (!kthread_should_stop()) {
		long left = schedule_timeout_interruptible(60 * HZ);

		if (left > 0 && !kthread_should_stop())
			WRITE_ONCE(early_wakeups, READ_ONCE(early_wakeups) + 1);
	}
	return 0;
}

static int suture_stall_thread(void *unused)
{
	return suture_stall_sleeper_wait();
}

static int __init suture_stall_init(void)
{
	if (!proc_create("suture_stall", 0444, NULL, &suture_stall_proc_ops))
		return -ENOMEM;
	sleeper = kthread_run(suture_stall_thread, NULL, "suture_stall");
	if (IS_ERR(sleeper)) {
		remove_proc_entry("suture_stall", NULL);
		return PTR_ERR(sleeper);
	}
	return 0;
}

static void __exit suture_stall_exit(void)
{
	WRITE_ONCE(unloading, true);
	wake_up_all(&reader_queue);
	kthread_stop(sleeper);
	remove_proc_entry("suture_stall", NULL);
}

module_init(suture_stall_init);
module_exit(suture_stall_exit);
MODULE_LICENSE("GPL");

// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose kernel thread sleeps inside one of its own functions, for the stalled-transition
 * test: the thread `suture_stall` spends its life in suture_stall_sleeper_wait(), sleeping
 * interruptibly for 60 s at a time. A livepatch replacing that function cannot switch the thread
 * (the function is always on its stack), so the transition stalls until forced.
 *
 * early_wakeups counts sleeps that ended before their 60 s without kthread_stop(): the kernel's
 * signalling round (klp_send_signals → wake_up_state(task, TASK_INTERRUPTIBLE)) shows up here.
 */
#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>

static int early_wakeups;
module_param(early_wakeups, int, 0444);
MODULE_PARM_DESC(early_wakeups, "sleeps cut short by a wake-up that was not kthread_stop()");

static struct task_struct *sleeper;

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
	sleeper = kthread_run(suture_stall_thread, NULL, "suture_stall");
	return PTR_ERR_OR_ZERO(sleeper);
}

static void __exit suture_stall_exit(void)
{
	kthread_stop(sleeper);
}

module_init(suture_stall_init);
module_exit(suture_stall_exit);
MODULE_LICENSE("GPL");

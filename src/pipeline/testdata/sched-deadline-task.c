// SPDX-License-Identifier: GPL-2.0
/*
 * A SCHED_DEADLINE task for the VM test of the sched/deadline fix: it switches itself to
 * SCHED_DEADLINE (2 ms every 10 ms) and sleeps 20 times, so the kernel enqueues it through
 * dl_sched_class.enqueue_task — a function pointer to enqueue_task_dl — again and again.
 * Built static by the test (gcc -static), so it runs in the busybox initramfs.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

int main(void)
{
	struct sched_attr a = {
		.size = sizeof(a),
		.sched_policy = 6, /* SCHED_DEADLINE */
		.sched_runtime = 2000000,
		.sched_deadline = 10000000,
		.sched_period = 10000000,
	};
	if (syscall(SYS_sched_setattr, 0, &a, 0)) {
		perror("sched_setattr");
		return 1;
	}
	for (int i = 0; i < 20; i++) {
		struct timespec t = { 0, 1000000 };
		nanosleep(&t, 0);
	}
	printf("deadline task slept 20 times\n");
	return 0;
}

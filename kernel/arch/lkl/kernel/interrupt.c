// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupting a system call blocked in the kernel, the way a host signal
 * interrupts a blocked host call: lkl_interrupt_async(tid) makes the task
 * with kernel thread id tid leave an interruptible wait, and its call
 * returns -EINTR (the restart codes are mapped in syscalls.c).
 *
 * It is async-signal-safe: a host signal handler may call it, also on the
 * blocked thread itself. It only queues the tid (atomics) and raises an
 * IRQ; the IRQ handler does the work under the CPU lock with
 * set_notify_signal(), which needs no signal queued and no handler in the
 * kernel, and clearing it at the call's exit cannot lose a real signal
 * (a bare TIF_SIGPENDING would be cleared by any recalc_sigpending() before
 * the sleeper saw it; docs/kernel.md). A task not inside a call when the IRQ runs is
 * left alone: its next call is not interrupted.
 */
#include <linux/interrupt.h>
#include <linux/init.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/pid_namespace.h>
#include <linux/rcupdate.h>
#include <linux/errno.h>
#include <asm/lkl.h>

#define INTERRUPT_SLOTS 64

static int pending_tids[INTERRUPT_SLOTS];
static int interrupt_irq;

static void interrupt_task(int tid)
{
	struct task_struct *task;

	rcu_read_lock();
	task = find_task_by_pid_ns(tid, &init_pid_ns);
	if (task && READ_ONCE(task->thread.in_syscall))
		set_notify_signal(task);
	rcu_read_unlock();
}

static irqreturn_t interrupt_handler(int irq, void *dev)
{
	int i, tid;

	for (i = 0; i < INTERRUPT_SLOTS; i++) {
		tid = __atomic_exchange_n(&pending_tids[i], 0, __ATOMIC_ACQ_REL);
		if (tid)
			interrupt_task(tid);
	}
	return IRQ_HANDLED;
}

int lkl_interrupt_async(int tid)
{
	int i, free = 0;

	if (tid <= 0)
		return -EINVAL;
	if (!interrupt_irq || !__atomic_load_n(&lkl_running, __ATOMIC_ACQUIRE))
		return -ESHUTDOWN;
	for (i = 0; i < INTERRUPT_SLOTS; i++) {
		if (__atomic_compare_exchange_n(&pending_tids[i], &free, tid, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return lkl_trigger_irq(interrupt_irq);
		free = 0;
	}
	/* All slots busy: the IRQ is pending anyway; report it. */
	return -EAGAIN;
}

static int __init lkl_interrupt_init(void)
{
	int irq = lkl_get_free_irq("interrupt");

	if (irq < 0)
		return irq;
	if (request_irq(irq, interrupt_handler, 0, "lkl-interrupt", NULL))
		return -EBUSY;
	interrupt_irq = irq;
	return 0;
}
device_initcall(lkl_interrupt_init);

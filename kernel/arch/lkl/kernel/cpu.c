// SPDX-License-Identifier: GPL-2.0-only
/*
 * The one virtual CPU. Exactly one host thread runs kernel code at a time:
 * the one that holds the CPU lock, a binary host semaphore. Ownership moves
 * in three ways only:
 *  - lkl_cpu_get/lkl_cpu_try_get and lkl_cpu_release (free <-> owned);
 *  - __switch_to, which posts the next task's semaphore and so hands the
 *    CPU over without releasing it (or the idle host thread's semaphore,
 *    idle.c).
 *
 * Invariant: while the CPU is free, current is either idle (in the idle
 * state, see idle.c) or a host task whose application thread has left the
 * kernel. A thread that takes the CPU without embodying current (an IRQ
 * from a device or timer thread, a new application thread) acts on
 * current's behalf: lkl_cpu_park_foreign.
 */
#include <linux/sched.h>
#include <linux/sched/stat.h>
#include <linux/sched/task.h>
#include <linux/errno.h>
#include <linux/cpu.h>
#include <asm/lkl.h>

static struct lkl_sem *cpu_sem;
static unsigned long cpu_owner;
int lkl_shutting_down;

void lkl_cpu_init(void)
{
	/* Created taken: the boot thread owns the CPU from the start. */
	cpu_sem = lkl_ops->sem_alloc(0, LKL_SEM_SPIN);
	lkl_idle_init();
}

static inline int shutting_down(void)
{
	return __atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE);
}

int lkl_cpu_get(void)
{
	if (shutting_down())
		return -ESHUTDOWN;
	lkl_ops->sem_down(cpu_sem);
	if (shutting_down()) {
		/* Pass the wake-up on: every waiter must see the shutdown. */
		lkl_ops->sem_up(cpu_sem);
		return -ESHUTDOWN;
	}
	cpu_owner = lkl_ops->thread_self();
	return 0;
}

int lkl_cpu_try_get(void)
{
	if (!cpu_sem || shutting_down())
		return 0;
	if (!lkl_ops->sem_trydown(cpu_sem))
		return 0;
	if (shutting_down()) {
		lkl_ops->sem_up(cpu_sem);
		return 0;
	}
	cpu_owner = lkl_ops->thread_self();
	return 1;
}

void lkl_cpu_release(void)
{
	if (unlikely(lkl_notify_pending()))
		lkl_notify_flush();
	cpu_owner = 0;
	lkl_ops->sem_up(cpu_sem);
}

void lkl_cpu_set_owner(unsigned long host)
{
	cpu_owner = host;
}

/* Reliable for the caller's own thread only: nobody else can store our id. */
int lkl_cpu_owned_by_self(void)
{
	unsigned long owner = READ_ONCE(cpu_owner);

	return owner && owner == lkl_ops->thread_self();
}

/*
 * The caller owns the CPU but does not embody current (by the invariant,
 * idle parked in arch_cpu_idle or a parked host task). Deliver pending
 * IRQs as an interrupt of current would be, then let whatever became
 * runnable run, or release the CPU.
 */
void lkl_cpu_park_foreign(void)
{
	for (;;) {
		if (is_idle_task(current)) {
			/* Go on as idle would after an interrupt. */
			if (!lkl_idle_run())
				return;
			/* Holding the CPU again, current maybe no longer idle. */
			continue;
		}

		if (lkl_irqs_pending())
			lkl_run_irqs();
		if (!single_task_running()) {
			/* Schedule on the parked host task's behalf. */
			if (!lkl_sched_jb())
				return;
		}

		lkl_cpu_release();
		/* An IRQ raised while we held the CPU found it taken: recheck. */
		if (!lkl_irqs_pending() || !lkl_cpu_try_get())
			return;
	}
}

/* Wake every thread waiting for the CPU; each passes the wake-up on. */
void lkl_cpu_shutdown_wake(void)
{
	lkl_cpu_release();
}

void lkl_cpu_relax(void)
{
	unsigned long flags;

	/* A busy-wait must let pending IRQs in, or it may wait forever. */
	local_irq_save(flags);
	local_irq_restore(flags);
}


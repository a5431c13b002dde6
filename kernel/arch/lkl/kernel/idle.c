// SPDX-License-Identifier: GPL-2.0-only
/*
 * The idle task without a host thread on the hot path ("virtual idle").
 *
 * The idle task's host thread boots the kernel, and once it first reaches
 * arch_cpu_idle it stays there for good: from then on, whichever thread
 * holds the CPU does idle's work on idle's behalf.
 *  - Switching away from idle (a task became runnable): the CPU holder runs
 *    schedule() as idle with TIF_SCHED_JB armed, so __switch_to hands the
 *    CPU to the next task and jumps back (lkl_idle_sched_jb).
 *  - Switching to idle (a host task blocks): the blocking application
 *    thread finishes the switch as idle (schedule_tail), enters the idle
 *    state and releases the CPU before it parks (lkl_idle_resume).
 *  - A kernel thread that switches to idle hands that work to the idle
 *    host thread instead: finishing the switch may free the kernel
 *    thread, and its own host thread cannot join itself.
 * Before, every idle transition woke the idle host thread, twice per
 * blocking call on the critical path of a request/response exchange.
 *
 * While the CPU is free with current == idle, the task is "in idle" in the
 * NO_HZ sense (tick_nohz_idle_enter and stop_tick done) and the virtual
 * IRQ flag is on; an IRQ delivered then runs as an interrupt of idle.
 */
#include <linux/sched.h>
#include <linux/sched/idle.h>
#include <linux/sched/task.h>
#include <linux/tick.h>
#include <linux/irqflags.h>
#include <asm/lkl.h>

/* Set once the idle host thread has parked in arch_cpu_idle for good. */
int lkl_idle_virtual;
/* idle is in the NO_HZ idle state (tick_nohz_idle_enter done, not exited). */
static int idle_in_nohz;
/* The kernel thread whose switch to idle the idle host thread must finish. */
static struct task_struct *idle_handoff_prev;
static struct lkl_sem *idle_sem;

void lkl_idle_init(void)
{
	idle_sem = lkl_ops->sem_alloc(0, 0);
}

static void idle_enter(void)
{
	if (idle_in_nohz)
		return;
	tick_nohz_idle_enter();
	local_irq_disable();
	tick_nohz_idle_stop_tick();
	idle_in_nohz = 1;
	local_irq_enable();
}

static void idle_exit(void)
{
	if (!idle_in_nohz)
		return;
	idle_in_nohz = 0;
	tick_nohz_idle_exit();
}

/*
 * current is idle and the caller holds the CPU: schedule as idle. Returns
 * 0 once another task owns the CPU (the caller no longer holds it), 1 if
 * nothing was runnable after all.
 */
int lkl_idle_sched_jb(void)
{
	idle_exit();
	set_ti_thread_flag(task_thread_info(&init_task), TIF_SCHED_JB);
	if (__builtin_setjmp(init_task.thread.sched_jb))
		return 0;
	schedule();
	clear_ti_thread_flag(task_thread_info(&init_task), TIF_SCHED_JB);
	return 1;
}

/*
 * current is idle, the caller holds the CPU, IRQs are on: run what is
 * pending, schedule whatever became runnable, or go idle and release the
 * CPU. Returns 0 without the CPU; or 1 holding it again (an IRQ came in
 * while it was free), in which case current may no longer be idle: while
 * the CPU was free, another thread may have taken it, switched to a task
 * and left it current (a host task whose thread then left the kernel).
 * Going on as idle then would schedule away from that task on a thread
 * that does not embody it, and park this thread on the wrong semaphore
 * for good; the caller acts for whatever is current instead
 * (lkl_cpu_park_foreign).
 */
int lkl_idle_run(void)
{
	for (;;) {
		if (lkl_irqs_pending())
			lkl_run_irqs();
		if (need_resched()) {
			if (!lkl_idle_sched_jb())
				return 0;
			continue;
		}
		idle_enter();
		if (need_resched())
			continue;
		lkl_cpu_release();
		/* An IRQ raised while we held the CPU found it taken: recheck. */
		if (!lkl_irqs_pending() || !lkl_cpu_try_get())
			return 0;
		if (!is_idle_task(current))
			return 1;
	}
}

/*
 * __switch_to(prev, idle) after idle went virtual. Called on prev's thread,
 * holding the CPU, with current already idle.
 */
void lkl_idle_resume(struct task_struct *prev)
{
	if (!lkl_is_host_task(prev)) {
		/* A kernel thread: the idle host thread finishes its switch. */
		idle_handoff_prev = prev;
		lkl_cpu_set_owner(init_task.thread.host);
		lkl_ops->sem_up(idle_sem);
		return;
	}
	schedule_tail(prev);
	if (lkl_idle_run())
		lkl_cpu_park_foreign();
}

/*
 * Entered once, by the idle host thread (IRQs off, in the NO_HZ idle state
 * do_idle set up); it returns only at shutdown, by leaving the thread.
 */
void arch_cpu_idle(void)
{
	struct task_struct *prev;

	lkl_idle_virtual = 1;
	idle_in_nohz = 1;
	local_irq_enable();
	for (;;) {
		if (__atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE))
			lkl_leave(&init_task);
		if (lkl_idle_run())
			lkl_cpu_park_foreign();
		lkl_ops->sem_down(idle_sem);
		if (__atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE))
			lkl_leave(&init_task);
		prev = idle_handoff_prev;
		idle_handoff_prev = NULL;
		schedule_tail(prev);
	}
}

void lkl_idle_shutdown_wake(void)
{
	lkl_ops->sem_up(idle_sem);
}

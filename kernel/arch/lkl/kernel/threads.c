// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tasks and host threads.
 *
 * A kernel thread (and the idle task) has a host thread of its own. It runs
 * only while the task is current; otherwise it waits on the task's
 * semaphore inside __switch_to. An application thread entering the kernel
 * embodies a "host task" (TIF_HOST_THREAD) of pid 1's thread group: it
 * waits on that task's semaphore until the scheduler picks the task, then
 * runs the system call as that task.
 *
 * lkl_sched_jb lets a host thread schedule away from a task without
 * staying parked in __switch_to: __switch_to sees TIF_SCHED_JB and longjmps
 * back to it once the next task owns the CPU. That is how an application
 * thread leaves the kernel while other tasks are runnable, and how a
 * thread exits a task for good.
 *
 * Jumps use __builtin_setjmp/__builtin_longjmp and stay inside this
 * object: no host unwinding ever crosses kernel frames.
 */
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/sched/debug.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/errno.h>
#include <asm/lkl.h>

struct task_struct *lkl_current_task = &init_task;

int lkl_host_task_marker(void *unused)
{
	/* Never runs: it only marks a task as a host task in copy_thread. */
	return 0;
}

int lkl_is_host_task(struct task_struct *task)
{
	return test_ti_thread_flag(task_thread_info(task), TIF_HOST_THREAD);
}

/* The boot thread becomes the idle task (pid 0). */
void lkl_threads_init(void)
{
	init_task.thread.sched_sem = lkl_ops->sem_alloc(0, 0);
	init_task.thread.host = lkl_ops->thread_self();
	init_task.thread.own_thread = init_task.thread.host;
}

/*
 * The calling host thread, which embodies @task, leaves kernel context for
 * good: to the end of its bootstrap (kernel threads, idle), or out of
 * lkl_syscall (a host task's application thread, at shutdown).
 */
void lkl_leave(struct task_struct *task)
{
	__builtin_longjmp(task->thread.exit_jb, 1);
}

static void lkl_task_bootstrap(void *arg)
{
	struct task_struct *task = arg;
	void *exit_jb[5];

	if (__builtin_setjmp(exit_jb))
		return;
	task->thread.exit_jb = exit_jb;

	/* Posted when the scheduler first switches to the task. */
	lkl_ops->sem_down(task->thread.sched_sem);
	if (task->thread.dead || lkl_shutting_down)
		return;

	schedule_tail(task->thread.prev_sched);
	task->thread.fn(task->thread.fn_arg);
	/* Kernel threads exit themselves; user-mode threads returning here do not. */
	do_exit(0);
}

int copy_thread(struct task_struct *p, const struct kernel_clone_args *args)
{
	struct thread_struct *t = &p->thread;

	/* arch_dup_task_struct copied the parent's state: start afresh. */
	memset(t, 0, sizeof(*t));
	clear_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);
	clear_ti_thread_flag(task_thread_info(p), TIF_SCHED_JB);

	/* A user clone()/clone3(): there is no user context to copy. */
	if (!args->fn)
		return -EINVAL;

	t->sched_sem = lkl_ops->sem_alloc(0, 0);
	if (!t->sched_sem)
		return -ENOMEM;

	if (args->fn == lkl_host_task_marker) {
		set_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);
		/* An application thread, not an io_uring worker. */
		p->flags &= ~(PF_IO_WORKER | PF_USER_WORKER);
		return 0;
	}

	t->fn = args->fn;
	t->fn_arg = args->fn_arg;
	t->own_thread = lkl_ops->thread_create(lkl_task_bootstrap, p);
	if (!t->own_thread) {
		lkl_ops->sem_free(t->sched_sem);
		t->sched_sem = NULL;
		return -ENOMEM;
	}
	t->host = t->own_thread;
	return 0;
}

/* Runs in free_task(), after the task can never be scheduled again. */
void arch_release_task_struct(struct task_struct *tsk)
{
	struct thread_struct *t = &tsk->thread;

	if (t->own_thread) {
		/* Its host thread is parked in __switch_to or its bootstrap. */
		t->dead = 1;
		lkl_ops->sem_up(t->sched_sem);
		lkl_ops->thread_join(t->own_thread);
		t->own_thread = 0;
	}
	if (t->sched_sem) {
		lkl_ops->sem_free(t->sched_sem);
		t->sched_sem = NULL;
	}
}

struct task_struct *__switch_to(struct task_struct *prev, struct task_struct *next)
{
	struct thread_struct *pt = &prev->thread, *nt = &next->thread;

	/* This thread gives the CPU up here: notify the host first. */
	if (unlikely(lkl_notify_pending()))
		lkl_notify_flush();

	lkl_current_task = next;
	nt->prev_sched = prev;

	if (next == &init_task && lkl_idle_virtual) {
		void *jb[5];
		int jump = test_and_clear_ti_thread_flag(task_thread_info(prev), TIF_SCHED_JB);

		/* Finishing the switch may free prev: copy what we need first. */
		if (jump)
			memcpy(jb, pt->sched_jb, sizeof(jb));
		lkl_idle_resume(prev);
		if (jump)
			__builtin_longjmp(jb, 1);
		goto park;
	}

	BUG_ON(!nt->host);
	lkl_cpu_set_owner(nt->host);

	if (test_and_clear_ti_thread_flag(task_thread_info(prev), TIF_SCHED_JB)) {
		void *jb[5];

		/* Once next runs, prev may be freed: copy the buffer first. */
		memcpy(jb, pt->sched_jb, sizeof(jb));
		lkl_ops->sem_up(nt->sched_sem);
		__builtin_longjmp(jb, 1);
	}

	lkl_ops->sem_up(nt->sched_sem);
park:
	lkl_ops->sem_down(pt->sched_sem);

	/* Switched back to prev: this thread owns the CPU again. */
	if (pt->dead || __atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE))
		lkl_leave(prev);

	return pt->prev_sched;
}

/*
 * Put current (a host task) to sleep and schedule away from it, without
 * parking the calling thread. Returns 0 once another task owns the CPU
 * (the caller no longer holds it), 1 if schedule() came back without a
 * switch (the caller still holds it).
 */
int lkl_sched_jb(void)
{
	struct task_struct *task = current;

	set_ti_thread_flag(task_thread_info(task), TIF_SCHED_JB);
	set_current_state(TASK_UNINTERRUPTIBLE);
	if (__builtin_setjmp(task->thread.sched_jb))
		return 0;
	schedule();
	clear_ti_thread_flag(task_thread_info(task), TIF_SCHED_JB);
	return 1;
}

/*
 * Make the calling thread (which owns the CPU) run as host task @task.
 * Returns owning the CPU with current == task.
 */
void lkl_enter_task(struct task_struct *task)
{
	task->thread.host = lkl_ops->thread_self();
	if (task == current)
		return;

	if (READ_ONCE(task->__state) == TASK_NEW)
		wake_up_new_task(task);
	else
		wake_up_process(task);

	for (;;) {
		/* Schedule on behalf of current: idle, or a parked host task. */
		if (is_idle_task(current) ? !lkl_idle_sched_jb() : !lkl_sched_jb())
			break;
	}

	lkl_ops->sem_down(task->thread.sched_sem);
	if (__atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE))
		lkl_leave(task);
	schedule_tail(task->thread.prev_sched);
}

/* The calling thread leaves the kernel; current is its host task. */
void lkl_task_put(void)
{
	lkl_cpu_park_foreign();
}

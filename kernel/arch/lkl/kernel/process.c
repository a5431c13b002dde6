// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel processes for host processes: the process-tree mode, where one
 * kernel (in a server process) serves every process of a tree, each as a
 * kernel process of its own (docs/process-tree.md).
 *
 * A kernel process here is an "anchor" task: the leader of a thread group
 * with its own descriptor table, fs context and mm, whose mm carries the
 * host's cookie for that host process's memory (asm/mmu.h). The anchor
 * runs no calls of the program; the host enters it only to make threads
 * (one host task per program thread, in the anchor's thread group) and
 * children. A child is made by a fork of the anchor without CLONE_FILES,
 * so the kernel's own dup_fd copies the descriptor table: shared open
 * files, independent numbers, close-on-exec bits, as on Linux.
 *
 * kernel_clone wakes the child it makes, so the child cannot stay
 * TASK_NEW for a host thread to adopt (as create_io_thread's host tasks
 * do): it starts on a host thread of its own, turns into a host task,
 * schedules away for good and lets that thread end. From then on it is a
 * parked host task like any other, entered by lkl_run_as.
 *
 * A kernel process takes its host process's pid where it is free (set_tid,
 * as clone3 does; pid_max is raised to the limit for it), so that what the
 * kernel shows of a process (netlink port ids, credentials passed on a
 * socket, a socket's owner) names the host process.
 *
 * A thread's host task takes its host thread's id the same way, where it
 * is free (not the main thread's: the anchor holds the process's pid):
 * such a task is made by kernel_clone with CLONE_THREAD from the anchor
 * and parks like an anchor; without a wanted id (or if it is taken) it is
 * a create_io_thread task, adopted when first entered.
 *
 * Every child is made a child of pid 1 (CLONE_PARENT from an anchor; the
 * first from a thread of pid 1), and pid 1 ignores SIGCHLD: an anchor that
 * exits is reaped at once, by the kernel.
 */
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/sched/signal.h>
#include <linux/sched/mm.h>
#include <linux/completion.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/err.h>
#include <linux/pid.h>
#include <linux/threads.h>
#include <asm/lkl.h>

struct birth {
	struct completion done;
	void *as;
	bool root;
	/* A thread of the process it is cloned from (shares its mm). */
	bool thread;
	int err;
	struct task_struct *task;
};

/* The new process's first code, on the host thread it starts on. */
static int become_anchor(void *arg)
{
	struct birth *b = arg;
	struct task_struct *task = current;
	/* An adopting thread replaces exit_jb: keep the one of this thread. */
	void **own_exit = task->thread.exit_jb;
	sigset_t all;

	if (!task->mm) {
		b->err = -EINVAL;
		complete(&b->done);
		return 0;
	}
	if (!b->thread)
		WRITE_ONCE(task->mm->context.host_as, b->as);
	/* A first process starts with no descriptors (pid 1's are the server's). */
	if (b->root)
		__close_range(0, ~0U, 0);
	/* Signals are never delivered to host tasks (syscalls.c). */
	sigfillset(&all);
	set_current_blocked(&all);
	set_thread_flag(TIF_HOST_THREAD);
	get_task_struct(task);
	b->task = task;
	complete(&b->done);

	/* Park as a host task; this host thread leaves the kernel. */
	while (lkl_sched_jb())
		;
	__builtin_longjmp(own_exit, 1);
}

struct clone_req {
	struct birth birth;
	unsigned long flags;
	pid_t pid;
};

static long clone_anchor(void *arg)
{
	struct clone_req *r = arg;
	struct kernel_clone_args args = {
		.flags = r->flags,
		.exit_signal = SIGCHLD,
		.fn = become_anchor,
		.fn_arg = &r->birth,
	};
	pid_t pid;

	if (r->pid > 0) {
		if (pid_max < PID_MAX_LIMIT)
			pid_max = PID_MAX_LIMIT;
		args.set_tid = &r->pid;
		args.set_tid_size = 1;
	}

	if (r->birth.thread)
		args.exit_signal = 0;
	if (r->birth.root) {
		/* pid 1 reaps its children at once: nobody waits for them. */
		spin_lock_irq(&current->sighand->siglock);
		current->sighand->action[SIGCHLD - 1].sa.sa_handler = SIG_IGN;
		spin_unlock_irq(&current->sighand->siglock);
	}
	pid = kernel_clone(&args);
	if (pid < 0)
		return pid;
	wait_for_completion(&r->birth.done);
	return r->birth.err;
}

/*
 * A new kernel process for the host process whose memory @as names, with
 * pid @pid if it is positive (-EEXIST: taken). With @parent (an anchor) it
 * is that process's fork: a copy of its descriptor table; without, a first
 * process with none. *@out gets the new anchor, which the caller owns
 * until lkl_task_exit.
 */
int lkl_process_new(void *parent, void *as, int pid, void **out)
{
	struct clone_req r = {
		.flags = parent ? CLONE_PARENT : 0,
		.pid = pid,
	};
	long ret;

	init_completion(&r.birth.done);
	r.birth.as = as;
	r.birth.root = !parent;
	ret = lkl_run_as(parent, clone_anchor, &r);
	if (ret)
		return ret;
	*out = r.birth.task;
	return 0;
}

static long new_thread(void *arg)
{
	struct task_struct **out = arg;
	struct task_struct *task;

	/* A host task in current's thread group, sharing its files and mm. */
	task = create_io_thread(lkl_host_task_marker, NULL, NUMA_NO_NODE);
	if (IS_ERR(task))
		return PTR_ERR(task);
	get_task_struct(task);
	*out = task;
	return 0;
}

/*
 * A new host task in @process's thread group, for one thread of the
 * program, with thread id @tid if it is positive and free (else the
 * kernel's choice). (Declared here, not in asm/lkl.h, which most of the
 * kernel includes.)
 */
int lkl_process_thread_tid(void *process, int tid, void **out);
int lkl_process_thread_tid(void *process, int tid, void **out)
{
	struct clone_req r = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
			 CLONE_THREAD | CLONE_SYSVSEM | CLONE_IO | CLONE_UNTRACED,
		.pid = tid,
	};

	if (!process)
		return -EINVAL;
	if (tid > 0) {
		init_completion(&r.birth.done);
		r.birth.thread = true;
		if (!lkl_run_as(process, clone_anchor, &r)) {
			*out = r.birth.task;
			return 0;
		}
	}
	return lkl_run_as(process, new_thread, out);
}

/* A new host task in @process's thread group, for one thread of the program. */
int lkl_process_thread(void *process, void **out)
{
	return lkl_process_thread_tid(process, 0, out);
}

/* Names the host process whose memory @process's calls use (after a fork). */
void lkl_process_set_as(void *process, void *as)
{
	struct task_struct *task = process;

	WRITE_ONCE(task->mm->context.host_as, as);
}

/* @task's thread id, as lkl_interrupt_async takes it. */
int lkl_task_pid(void *task)
{
	return task_pid_nr(task);
}

/* Ends host task @task (an anchor or a thread) and drops the caller's hold. */
void lkl_task_exit(void *task)
{
	put_task_struct(task);
	lkl_exit_host_task(task);
}

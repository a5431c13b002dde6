/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_PROCESSOR_H
#define _ASM_LKL_PROCESSOR_H

#ifndef __ASSEMBLY__

struct lkl_sem;
struct task_struct;

/*
 * Host-side state of a kernel task. A task either has a host thread of its
 * own (kernel threads, idle) or is a "host task" embodied by whichever
 * application thread is inside lkl_syscall on its behalf.
 */
struct thread_struct {
	/* The embodying host thread waits here until the scheduler picks the task. */
	struct lkl_sem *sched_sem;
	/* Host thread that embodies the task now. */
	unsigned long host;
	/* Host thread created for the task (0 for host tasks); joined on release. */
	unsigned long own_thread;
	/* The task that ran before this one when it last resumed. */
	struct task_struct *prev_sched;
	/* __builtin_setjmp buffer armed by lkl_sched_jb (TIF_SCHED_JB). */
	void *sched_jb[5];
	/* Where a woken host thread goes to leave (thread exit or syscall bail-out). */
	void **exit_jb;
	/* Set when the task is freed: its parked host thread must exit. */
	int dead;
	/* A host task inside lkl_syscall (interrupt.c interrupts only those). */
	int in_syscall;
	int (*fn)(void *);
	void *fn_arg;
};

#define INIT_THREAD { }

extern void lkl_cpu_relax(void);
#define cpu_relax()	lkl_cpu_relax()

#define TASK_SIZE	(~0UL)
#define TASK_UNMAPPED_BASE	0
#define STACK_TOP	TASK_SIZE
#define STACK_TOP_MAX	TASK_SIZE

#define task_pt_regs(tsk)	((struct pt_regs *)NULL)
#define KSTK_EIP(tsk)	(0)
#define KSTK_ESP(tsk)	(0)

static inline unsigned long __get_wchan(struct task_struct *p)
{
	return 0;
}

static inline void prepare_to_copy(struct task_struct *tsk)
{
}

#define start_thread(regs, pc, sp)	do { } while (0)

#endif /* __ASSEMBLY__ */

#endif

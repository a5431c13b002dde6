// SPDX-License-Identifier: GPL-2.0-only
/*
 * Life cycle: lkl_start_kernel boots the kernel on a new host thread (which
 * becomes the idle task) and returns once pid 1 has been handed to the
 * caller; lkl_sys_halt brings everything down again (lkl_teardown).
 */
#include <linux/init.h>
#include <linux/start_kernel.h>
#include <linux/string.h>
#include <linux/panic.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/syscalls.h>
#include <linux/errno.h>
#include <asm/setup.h>
#include <asm/sections.h>
#include <asm/unistd.h>
#include <asm/lkl.h>

const struct lkl_host_operations *lkl_ops;
struct lkl_sem *lkl_init_sem;
unsigned long lkl_boot_caller;
int lkl_running;

static long lkl_panic_blink(int state)
{
	static int called;

	if (!called++ && lkl_ops->panic)
		lkl_ops->panic();
	return 0;
}

void __init setup_arch(char **cmdline_p)
{
	*cmdline_p = boot_command_line;
	panic_blink = lkl_panic_blink;
	parse_early_param();
	lkl_bootmem_init();
}

static void __ref lkl_run_kernel(void *arg)
{
	void *jb[5];

	if (__builtin_setjmp(jb))
		return;
	init_task.thread.exit_jb = jb;
	lkl_threads_init();
	lkl_cpu_set_owner(init_task.thread.host);
	start_kernel();
}

/*
 * Most of the kernel's code runs once, at boot (initcalls, subsystem set-up),
 * and stays mapped in the process afterwards: about 5 MiB of the host image
 * (docs/kernel.md). Hand those pages back, and the read-only data's; what
 * runs again maps back in. Each range lies inside one output section of
 * lkl.o (the symbols between sections do not survive the final link).
 */
static void lkl_discard_boot_code(void)
{
	unsigned long ranges[][2] = {
		{ (unsigned long)_stext, (unsigned long)_etext },
		{ (unsigned long)_sinittext, (unsigned long)_einittext },
		{ (unsigned long)__start_rodata, (unsigned long)__start_ro_after_init },
	};
	int i;

	if (!lkl_ops->image_discard)
		return;
	for (i = 0; i < ARRAY_SIZE(ranges); i++) {
		unsigned long start = PAGE_ALIGN(ranges[i][0]);
		unsigned long end = ranges[i][1] & PAGE_MASK;

		if (end > start)
			lkl_ops->image_discard((void *)start, end - start);
	}
}

int __ref lkl_start_kernel(const struct lkl_host_operations *ops, const char *cmdline)
{
	static int started;
	struct task_struct *pid1;
	lkl_thread_t boot_thread;

	if (!ops || !cmdline)
		return -EINVAL;
	if (__atomic_exchange_n(&started, 1, __ATOMIC_ACQ_REL))
		return -EALREADY;
	if (strscpy(boot_command_line, cmdline, COMMAND_LINE_SIZE) < 0)
		return -E2BIG;

	lkl_ops = ops;
	lkl_init_sem = ops->sem_alloc(0, 0);
	if (!lkl_init_sem)
		return -ENOMEM;
	lkl_cpu_init();
	lkl_boot_caller = ops->thread_self();

	boot_thread = ops->thread_create(lkl_run_kernel, NULL);
	if (!boot_thread)
		return -ENOMEM;

	/* Posted by lkl_become_host0, which hands us the CPU as pid 1. */
	ops->sem_down(lkl_init_sem);
	ops->sem_free(lkl_init_sem);
	lkl_init_sem = NULL;

	pid1 = lkl_host0;
	ops->thread_join(pid1->thread.own_thread);
	pid1->thread.own_thread = 0;
	lkl_host0_adopt();

	__atomic_store_n(&lkl_running, 1, __ATOMIC_RELEASE);
	lkl_task_put();
	lkl_discard_boot_code();
	return 0;
}

int lkl_is_running(void)
{
	return __atomic_load_n(&lkl_running, __ATOMIC_ACQUIRE);
}

long lkl_sys_halt(void)
{
	long params[6] = { 0 };
	long ret;

	lkl_syscall(__NR_sync, params);

	params[0] = LINUX_REBOOT_MAGIC1;
	params[1] = LINUX_REBOOT_MAGIC2;
	params[2] = LINUX_REBOOT_CMD_POWER_OFF;
	ret = lkl_syscall(__NR_reboot, params);
	return ret;
}

/*
 * Runs on the thread that issued reboot, owning the CPU, with the kernel
 * frozen: no kernel code runs again. Wakes every host thread so that each
 * leaves (kernel threads end, application threads return -ESHUTDOWN from
 * lkl_syscall), joins the threads the kernel created, and returns the RAM.
 */
void lkl_teardown(void)
{
	struct task_struct *g, *t;
	lkl_thread_t *threads;
	int n = 1, i = 0;

	__atomic_store_n(&lkl_running, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&lkl_shutting_down, 1, __ATOMIC_RELEASE);
	lkl_time_shutdown();

	for_each_process_thread(g, t)
		n++;
	threads = lkl_ops->mem_alloc(n * sizeof(*threads));

	/* idle first: it waits in arch_cpu_idle or in __switch_to. */
	init_task.thread.dead = 1;
	threads[i++] = init_task.thread.own_thread;
	lkl_ops->sem_up(init_task.thread.sched_sem);
	lkl_idle_shutdown_wake();

	for_each_process_thread(g, t) {
		if (t == current || !t->thread.sched_sem)
			continue;
		if (t->thread.own_thread) {
			t->thread.dead = 1;
			if (threads && i < n)
				threads[i++] = t->thread.own_thread;
		}
		/* A host task's thread, if any waits, bails out of lkl_syscall. */
		lkl_ops->sem_up(t->thread.sched_sem);
	}
	lkl_syscalls_wake_waiters();
	lkl_cpu_shutdown_wake();

	while (threads && i > 0)
		lkl_ops->thread_join(threads[--i]);
	lkl_syscalls_drain();

	for_each_process_thread(g, t) {
		if (t->thread.sched_sem) {
			lkl_ops->sem_free(t->thread.sched_sem);
			t->thread.sched_sem = NULL;
		}
	}
	lkl_ops->sem_free(init_task.thread.sched_sem);
	if (threads)
		lkl_ops->mem_free(threads);
	lkl_syscalls_cleanup();
	lkl_bootmem_free();
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * System calls from host threads. Any host thread may call lkl_syscall:
 * it gets a host task of pid 1's thread group on first use (kept in a host
 * TLS key, released when the thread exits), takes the CPU, becomes that
 * task and runs the call directly. A call that blocks parks only its own
 * thread.
 */
#include <linux/syscalls.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/sched/signal.h>
#include <linux/task_work.h>
#include <linux/resume_user_mode.h>
#include <linux/restart_block.h>
#include <linux/wait.h>
#include <linux/mm.h>
#include <linux/errno.h>
#include <asm/unistd.h>
#include <asm/lkl.h>

/* mmap takes a byte offset in the generic ABI; nommu works in pages. */
SYSCALL_DEFINE6(mmap, unsigned long, addr, unsigned long, len,
		unsigned long, prot, unsigned long, flags,
		unsigned long, fd, off_t, off)
{
	if (off & ~PAGE_MASK)
		return -EINVAL;
	return ksys_mmap_pgoff(addr, len, prot, flags, fd, off >> PAGE_SHIFT);
}

/* Nothing returns to user mode: no user clone, no signal frames. */
#define sys_clone		sys_ni_syscall
#define sys_clone3		sys_ni_syscall
#define sys_rt_sigreturn	sys_ni_syscall

typedef long (*syscall_fn_t)(long, long, long, long, long, long);

#define __SYSCALL(nr, call)	[nr] = (void *)(call),
#define __SYSCALL_WITH_COMPAT(nr, native, compat)	__SYSCALL(nr, native)

asmlinkage long sys_virtio_mmio_device_add(unsigned long base, unsigned long size,
					   unsigned int irq);
asmlinkage long sys_lkl_notifier_add(int fd, unsigned int events, unsigned long cb,
				     unsigned long cookie);
asmlinkage long sys_lkl_notifier_del(int id);

static void *const syscall_table[__NR_syscalls] = {
	[0 ... __NR_syscalls - 1] = (void *)sys_ni_syscall,
#include <asm/syscall_table_64.h>
	/* Our own, in the slot the generic ABI leaves to each arch. */
	[__NR_virtio_mmio_device_add] = (void *)sys_virtio_mmio_device_add,
	[__NR_lkl_notifier_add] = (void *)sys_lkl_notifier_add,
	[__NR_lkl_notifier_del] = (void *)sys_lkl_notifier_del,
};

struct task_struct *lkl_host0;
static struct lkl_tls_key *task_key;
static int inflight;
static struct lkl_sem *drain_sem;

/* Host tasks made ahead of need by the factory thread, not yet woken. */
#define POOL_TARGET	4
static struct task_struct *pool[POOL_TARGET];
static int pool_count;
static int pool_waiters;
static long pool_error;
static bool host0_free;
static struct lkl_sem *pool_sem;
static DECLARE_WAIT_QUEUE_HEAD(factory_wq);

static int host_task_factory(void *unused)
{
	struct task_struct *task;

	for (;;) {
		wait_event_idle(factory_wq, pool_count < POOL_TARGET);
		/* Runs in pid 1's thread group, so the task joins it. */
		task = create_io_thread(lkl_host_task_marker, NULL, NUMA_NO_NODE);
		if (IS_ERR(task)) {
			pool_error = PTR_ERR(task);
		} else {
			pool_error = 0;
			pool[pool_count++] = task;
		}
		for (; pool_waiters; pool_waiters--)
			lkl_ops->sem_up(pool_sem);
		if (IS_ERR(task))
			schedule_timeout_idle(HZ / 10);
	}
	return 0;
}

/* Called owning the CPU; returns owning it, or an error without it. */
static struct task_struct *take_host_task(void)
{
	struct task_struct *task;
	int ret;

	for (;;) {
		if (host0_free) {
			host0_free = false;
			return lkl_host0;
		}
		if (pool_count) {
			task = pool[--pool_count];
			wake_up(&factory_wq);
			return task;
		}
		if (pool_error && !pool_waiters) {
			ret = pool_error;
			pool_error = 0;
			lkl_cpu_park_foreign();
			return ERR_PTR(ret);
		}
		pool_waiters++;
		wake_up(&factory_wq);
		lkl_cpu_park_foreign();
		lkl_ops->sem_down(pool_sem);
		ret = lkl_cpu_get();
		if (ret < 0)
			return ERR_PTR(ret);
	}
}

static void inflight_dec(void)
{
	__atomic_sub_fetch(&inflight, 1, __ATOMIC_ACQ_REL);
	/* The halting thread waits for the count to drop to itself alone. */
	if (__atomic_load_n(&lkl_shutting_down, __ATOMIC_ACQUIRE))
		lkl_ops->sem_up(drain_sem);
}

static void syscall_exit_work(void)
{
	if (test_thread_flag(TIF_NOTIFY_RESUME))
		resume_user_mode_work(NULL);
	if (task_work_pending(current))
		task_work_run();
	if (test_thread_flag(TIF_NOTIFY_SIGNAL))
		clear_notify_signal();
	/*
	 * Signals are never delivered (nothing returns to user mode); a
	 * pending one would make every later wait return at once.
	 */
	if (test_thread_flag(TIF_SIGPENDING))
		flush_signals(current);
}

static long run_syscall(long no, long *params)
{
	long ret;

again:
	if (no < 0 || no >= __NR_syscalls)
		return -ENOSYS;
	ret = ((syscall_fn_t)syscall_table[no])(params[0], params[1], params[2],
						 params[3], params[4], params[5]);
	syscall_exit_work();

	switch (ret) {
	case -ERESTARTNOINTR:
		goto again;
	case -ERESTART_RESTARTBLOCK:
		current->restart_block.fn = do_no_restart_syscall;
		fallthrough;
	case -ERESTARTSYS:
	case -ERESTARTNOHAND:
		ret = -EINTR;
		break;
	}
	return ret;
}

static unsigned long halting_thread;

/*
 * Runs @fn(@arg) on the calling host thread as host task @task, or as the
 * thread's own host task (made on first use) when @task is NULL. The
 * caller makes sure no other thread runs as @task meanwhile.
 */
long lkl_run_as(struct task_struct *task, long (*fn)(void *), void *arg)
{
	void *jb[5];
	long ret;

	if (!lkl_ops)
		return -ENODEV;
	/* From kernel context (a host op calling back in) it could only deadlock. */
	if (lkl_cpu_owned_by_self())
		return -EDEADLK;
	if (!__atomic_load_n(&lkl_running, __ATOMIC_ACQUIRE))
		return lkl_shutting_down ? -ESHUTDOWN : -ENODEV;

	__atomic_add_fetch(&inflight, 1, __ATOMIC_ACQ_REL);
	ret = lkl_cpu_get();
	if (ret < 0)
		goto out;

	if (!task) {
		task = lkl_ops->tls_get(task_key);
		if (!task) {
			task = take_host_task();
			if (IS_ERR(task)) {
				ret = PTR_ERR(task);
				goto out;
			}
			lkl_ops->tls_set(task_key, task);
		}
	}

	if (__builtin_setjmp(jb)) {
		/* Shutdown woke us, or this call is the halt itself. */
		if (halting_thread == lkl_ops->thread_self()) {
			lkl_teardown();
			ret = 0;
		} else {
			ret = -ESHUTDOWN;
		}
		goto out;
	}
	task->thread.exit_jb = jb;
	lkl_enter_task(task);

	task->thread.in_syscall = 1;
	ret = fn(arg);
	task->thread.in_syscall = 0;
	lkl_task_put();
out:
	inflight_dec();
	return ret;
}

struct syscall_args {
	long no;
	long *params;
};

static long syscall_fn(void *arg)
{
	struct syscall_args *a = arg;

	return run_syscall(a->no, a->params);
}

long lkl_syscall(long no, long *params)
{
	struct syscall_args a = { no, params };

	return lkl_run_as(NULL, syscall_fn, &a);
}

/* System call @no as host task @task (a process of the tree's, process.c). */
long lkl_task_syscall(void *task, long no, long *params)
{
	struct syscall_args a = { no, params };

	if (!task)
		return -EINVAL;
	return lkl_run_as(task, syscall_fn, &a);
}

/* machine_halt and friends: leave the reboot call for the teardown. */
void lkl_halt_jump(void)
{
	halting_thread = lkl_ops->thread_self();
	lkl_leave(current);
}

/* Wait until every thread that was inside lkl_syscall has left it. */
void lkl_syscalls_drain(void)
{
	while (__atomic_load_n(&inflight, __ATOMIC_ACQUIRE) > 1)
		lkl_ops->sem_down(drain_sem);
}

/* Threads waiting for a host task: they find the CPU gone and return. */
void lkl_syscalls_wake_waiters(void)
{
	for (; pool_waiters; pool_waiters--)
		lkl_ops->sem_up(pool_sem);
}

void lkl_syscalls_cleanup(void)
{
	lkl_ops->tls_free(task_key);
}

/*
 * The calling host thread ends host task @task for good: it becomes the
 * task and exits it. The task is done with (and may be freed) afterwards.
 */
void lkl_exit_host_task(struct task_struct *task)
{
	void *jb[5];

	__atomic_add_fetch(&inflight, 1, __ATOMIC_ACQ_REL);
	if (lkl_cpu_get() < 0)
		goto out;

	if (task == lkl_host0) {
		/* pid 1 never exits: the next new thread takes it over. */
		host0_free = true;
		lkl_cpu_park_foreign();
		goto out;
	}

	if (__builtin_setjmp(jb))
		goto out;
	task->thread.exit_jb = jb;
	lkl_enter_task(task);

	/* The dead task's last __switch_to jumps back here. */
	set_thread_flag(TIF_SCHED_JB);
	if (!__builtin_setjmp(task->thread.sched_jb))
		do_exit(0);
out:
	inflight_dec();
}

/* TLS destructor: the host thread that used @data as its task exits. */
static void host_task_release(void *data)
{
	lkl_exit_host_task(data);
}

/*
 * pid 1, in the middle of exec'ing /init, turns into host0: the host task
 * of the thread that called lkl_start_kernel. Its own host thread ends.
 */
void lkl_become_host0(void)
{
	struct task_struct *task = current, *factory;
	void **exit_jb = task->thread.exit_jb;
	sigset_t all;

	lkl_host0 = task;
	set_thread_flag(TIF_HOST_THREAD);
	sigfillset(&all);
	set_current_blocked(&all);

	pool_sem = lkl_ops->sem_alloc(0, 0);
	drain_sem = lkl_ops->sem_alloc(0, 0);
	task_key = lkl_ops->tls_alloc(host_task_release);
	if (!pool_sem || !drain_sem || !task_key)
		panic("lkl: out of host resources");

	factory = create_io_thread(host_task_factory, NULL, NUMA_NO_NODE);
	if (IS_ERR(factory))
		panic("lkl: no host task factory: %ld", PTR_ERR(factory));
	factory->flags &= ~(PF_IO_WORKER | PF_USER_WORKER);
	set_task_comm(factory, "lkl_factory");
	wake_up_new_task(factory);

	task->thread.host = lkl_boot_caller;
	lkl_cpu_set_owner(lkl_boot_caller);
	/* The CPU passes to the boot caller with this post. */
	lkl_ops->sem_up(lkl_init_sem);
	__builtin_longjmp(exit_jb, 1);
}

int lkl_host0_adopt(void)
{
	return lkl_ops->tls_set(task_key, lkl_host0);
}

/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_HOST_OPS_H
#define _ASM_LKL_HOST_OPS_H

/*
 * The one boundary between the kernel and its host. The host (Rust, in
 * src/host/) fills this table and passes it to lkl_start_kernel; the
 * kernel reaches the host only through it. Included by arch/lkl/kernel
 * files alone, so that changing it does not rebuild the whole kernel.
 *
 * Conventions: handles are opaque pointers; 0/NULL means failure; an int
 * result is 0 or a negative errno. Every op may be called from any host
 * thread. Ops marked "no block" may be called with the CPU lock held by a
 * thread that must not wait for another kernel-backed thread.
 */

struct lkl_sem;
struct lkl_tls_key;
struct lkl_timer;

typedef unsigned long lkl_thread_t;

#define LKL_SEM_SPIN	1

struct lkl_host_operations {
	/* console: every printk line, not NUL-terminated. no block. */
	void (*print)(const char *str, int len);
	/* called once on kernel panic, after the message; may not return. */
	void (*panic)(void);

	/*
	 * counting semaphores: the scheduling primitive. LKL_SEM_SPIN marks a
	 * contended lock (the CPU lock): a waiter may spin briefly before it
	 * sleeps, since the holder usually releases it within microseconds.
	 */
	struct lkl_sem *(*sem_alloc)(int count, int flags);
	void (*sem_free)(struct lkl_sem *sem);
	void (*sem_up)(struct lkl_sem *sem);		/* no block */
	void (*sem_down)(struct lkl_sem *sem);		/* never returns early */
	int (*sem_trydown)(struct lkl_sem *sem);	/* 1 if taken; no block */

	/*
	 * A joinable host thread running f(arg), with every host signal
	 * blocked. Returns 0 on failure. f returning ends the thread.
	 */
	lkl_thread_t (*thread_create)(void (*f)(void *), void *arg);
	int (*thread_join)(lkl_thread_t thread);
	lkl_thread_t (*thread_self)(void);		/* never 0 */

	/* thread-local keys; the destructor runs when a host thread exits. */
	struct lkl_tls_key *(*tls_alloc)(void (*destructor)(void *));
	void (*tls_free)(struct lkl_tls_key *key);
	int (*tls_set)(struct lkl_tls_key *key, void *data);
	void *(*tls_get)(struct lkl_tls_key *key);	/* no block */

	/* small allocations for host-side objects. */
	void *(*mem_alloc)(unsigned long size);
	void (*mem_free)(void *ptr);
	/* the kernel's RAM: page aligned, zero filled, returned whole at halt. */
	void *(*page_alloc)(unsigned long size);
	void (*page_free)(void *addr, unsigned long size);
	/*
	 * A hint that these whole pages of the kernel's image (its code and
	 * read-only data, in the host's executable or library) are not needed
	 * now: the host may drop them from the process's resident set, as long
	 * as touching them again maps them back unchanged (from the file).
	 * Optional (NULL: nothing happens). no block.
	 */
	void (*image_discard)(void *addr, unsigned long size);

	/* clocks in nanoseconds. no block. */
	unsigned long long (*time)(void);		/* monotonic */
	unsigned long long (*realtime)(void);		/* since the Unix epoch */

	/*
	 * One-shot timers, all served by one host thread: fn(arg) runs on it
	 * delta_ns after the last set. timer_free returns once fn can no
	 * longer run.
	 */
	struct lkl_timer *(*timer_alloc)(void (*fn)(void *), void *arg);
	int (*timer_set_oneshot)(struct lkl_timer *timer, unsigned long long delta_ns);
	void (*timer_free)(struct lkl_timer *timer);

	/*
	 * Device register access at a host address handed to the kernel as a
	 * virtio-mmio base. size is 1, 2, 4 or 8. Runs with the CPU lock held:
	 * it may call lkl_trigger_irq but never lkl_syscall. no block.
	 */
	int (*iomem_access)(const volatile void *addr, void *val, int size, int write);

	/*
	 * Program ("user") memory: every copy_from_user, copy_to_user,
	 * get_user, put_user, strncpy_from_user, strnlen_user and clear_user
	 * of the kernel ends in one of these (arch/lkl/kernel/uaccess.c;
	 * docs/uaccess.md). user_read copies n bytes from the program's
	 * address src to the kernel's dst, user_write from the kernel's src
	 * to the program's dst, user_clear zeroes n bytes at the program's
	 * dst. Each copies in address order, stops at the first byte it cannot
	 * reach (unmapped, or not readable/writable) and returns how many
	 * bytes it did NOT copy: 0 when all were.
	 *
	 * as is the program's address space: current->mm->context.host_as,
	 * NULL for the process the kernel runs in (the only value today). An
	 * implementation for programs in other processes receives its own
	 * cookie there. Runs with the CPU lock held; it must not call into the
	 * kernel. no block.
	 */
	unsigned long (*user_read)(void *as, void *dst, const void *src, unsigned long n);
	unsigned long (*user_write)(void *as, void *dst, const void *src, unsigned long n);
	unsigned long (*user_clear)(void *as, void *dst, unsigned long n);
};

#endif

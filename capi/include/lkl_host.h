/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lkl_host.h: the host side of the C API (LKL's split: lkl.h is what a
 * program calls, lkl_host.h what the library runs the kernel on).
 *
 * The host operations (threads, semaphores, memory, timers, the kernel's
 * access to program memory) are the library's own, written in Rust; a C
 * program cannot replace them (LKL lets it supply the whole table). What
 * it may change is where the kernel's console goes.
 */
#ifndef _LKL_HOST_H
#define _LKL_HOST_H

#include <stdarg.h>
#include <stdio.h>

#include <lkl.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * lkl_host_operations - what a program may set before lkl_start_kernel
 *
 * @print - receives the kernel's console output (@str holds @len bytes and
 * a NUL); NULL discards it. The default writes to stderr (LKL's writes to
 * stdout).
 */
struct lkl_host_operations {
	void (*print)(const char *str, int len);
};

/* The library's table: pass &lkl_host_ops to lkl_start_kernel. */
extern struct lkl_host_operations lkl_host_ops;

/* lkl_printf - print through lkl_host_ops.print (nothing if it is NULL);
 * the number of bytes printed */
static inline int lkl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int lkl_printf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (!lkl_host_ops.print)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return n;
	if ((unsigned int)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	lkl_host_ops.print(buf, n);
	return n;
}

#ifdef __cplusplus
}
#endif

#endif /* _LKL_HOST_H */

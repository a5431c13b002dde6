/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_UACCESS_H
#define _ASM_LKL_UACCESS_H

/*
 * Program ("user") memory. The kernel runs without an MMU, so a user
 * pointer is a host address of the program, which may be unmapped: every
 * access goes through the host's user_* ops (kernel/uaccess.c), which
 * return the bytes they could not copy instead of crashing, as the
 * exception tables of an MMU kernel do. The sized get_user/put_user forms
 * and strncpy_from_user/strnlen_user (lib/, word at a time) reach them
 * through raw_copy_from_user/raw_copy_to_user. See docs/uaccess.md.
 */
#include <linux/types.h>
#include <linux/compiler.h>

unsigned long lkl_user_read(void *to, const void __user *from, unsigned long n);
unsigned long lkl_user_write(void __user *to, const void *from, unsigned long n);
unsigned long lkl_user_clear(void __user *to, unsigned long n);

static inline __must_check unsigned long
raw_copy_from_user(void *to, const void __user *from, unsigned long n)
{
	return lkl_user_read(to, from, n);
}

static inline __must_check unsigned long
raw_copy_to_user(void __user *to, const void *from, unsigned long n)
{
	return lkl_user_write(to, from, n);
}
#define INLINE_COPY_FROM_USER
#define INLINE_COPY_TO_USER

static inline __must_check unsigned long
__clear_user(void __user *to, unsigned long n)
{
	return lkl_user_clear(to, n);
}
#define __clear_user __clear_user

/*
 * Kernel memory (copy_from_kernel_nofault) is the kernel's own, in this
 * process: plain accesses, as asm-generic has them for NOMMU.
 */
#include <linux/unaligned.h>

#define __get_kernel_nofault(dst, src, type, err_label)			\
do {									\
	*((type *)(dst)) = get_unaligned((type *)(src));		\
	if (0)								\
		goto err_label;						\
} while (0)

#define __put_kernel_nofault(dst, src, type, err_label)			\
do {									\
	put_unaligned(*((type *)(src)), (type *)(dst));			\
	if (0)								\
		goto err_label;						\
} while (0)

#include <asm-generic/uaccess.h>

#endif

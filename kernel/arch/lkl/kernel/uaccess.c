// SPDX-License-Identifier: GPL-2.0-only
/*
 * The one seam for program ("user") memory: asm/uaccess.h routes every
 * user access here, and this reaches the host's user_* ops with the
 * address-space cookie of the current task's mm. Out of line so that the
 * host operations table stays out of the headers every file includes.
 */
#include <linux/types.h>
#include <linux/export.h>
#include <linux/sched.h>
#include <linux/mm_types.h>
#include <linux/uaccess.h>
#include <asm/lkl.h>

static inline void *lkl_user_as(void)
{
	struct mm_struct *mm = current->mm;

	return mm ? mm->context.host_as : NULL;
}

/* A host answer above n would make the callers index outside their buffers. */
static inline unsigned long lkl_user_left(unsigned long left, unsigned long n)
{
	return likely(left <= n) ? left : n;
}

unsigned long lkl_user_read(void *to, const void __user *from, unsigned long n)
{
	return lkl_user_left(lkl_ops->user_read(lkl_user_as(), to,
						(const void __force *)from, n), n);
}
EXPORT_SYMBOL(lkl_user_read);

unsigned long lkl_user_write(void __user *to, const void *from, unsigned long n)
{
	return lkl_user_left(lkl_ops->user_write(lkl_user_as(),
						 (void __force *)to, from, n), n);
}
EXPORT_SYMBOL(lkl_user_write);

unsigned long lkl_user_clear(void __user *to, unsigned long n)
{
	return lkl_user_left(lkl_ops->user_clear(lkl_user_as(),
						 (void __force *)to, n), n);
}
EXPORT_SYMBOL(lkl_user_clear);

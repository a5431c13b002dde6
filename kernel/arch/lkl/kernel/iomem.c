// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device register access (asm/io.h). Out of line, so that the host
 * operations table stays out of the headers every file includes.
 */
#include <linux/types.h>
#include <linux/bug.h>
#include <linux/io.h>
#include <asm/lkl.h>

u64 lkl_iomem_read(const volatile void __iomem *addr, int size)
{
	u64 val = 0;

	WARN_ON_ONCE(lkl_ops->iomem_access((const volatile void __force *)addr,
					   &val, size, 0));
	return val;
}

void lkl_iomem_write(volatile void __iomem *addr, u64 val, int size)
{
	WARN_ON_ONCE(lkl_ops->iomem_access((const volatile void __force *)addr,
					   &val, size, 1));
}

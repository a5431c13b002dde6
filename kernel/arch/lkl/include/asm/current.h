/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_CURRENT_H
#define _ASM_LKL_CURRENT_H

#ifndef __ASSEMBLY__
struct task_struct;

/*
 * Kernel code runs on arbitrary host stacks, so current cannot be derived
 * from the stack pointer: __switch_to keeps this pointer up to date.
 */
extern struct task_struct *lkl_current_task;

static __always_inline struct task_struct *get_current(void)
{
	return lkl_current_task;
}

#define current get_current()
#endif

#endif

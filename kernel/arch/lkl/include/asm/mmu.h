/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_MMU_H
#define _ASM_LKL_MMU_H

/*
 * NOMMU's mm context (asm-generic/mmu.h) plus the host's cookie for the
 * program memory this mm stands for: passed to the user_* host ops by
 * every user copy of a task using this mm (its threads, io_uring workers,
 * kthread_use_mm). NULL: the process the kernel runs in. A copy of an mm
 * (fork) keeps its parent's cookie until the host sets another.
 */
#ifndef __ASSEMBLY__
typedef struct {
	unsigned long	end_brk;
	void		*host_as;
} mm_context_t;
#endif

#endif

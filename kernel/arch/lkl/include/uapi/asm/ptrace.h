/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#ifndef _UAPI_ASM_LKL_PTRACE_H
#define _UAPI_ASM_LKL_PTRACE_H

/* Nothing traps into the kernel, so the register frame is empty. */
#ifndef __ASSEMBLY__
struct pt_regs {
	unsigned long dummy;
};
#endif

#endif

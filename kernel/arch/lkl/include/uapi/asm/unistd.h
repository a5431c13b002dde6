/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#ifndef _UAPI_ASM_LKL_UNISTD_H
#define _UAPI_ASM_LKL_UNISTD_H

/* The generic 64-bit syscall numbers (those of arm64 and riscv64). */
#include <asm/unistd_64.h>

/* lkl-specific calls, at the arch-specific slot of the generic table. */
/* The generic ABI leaves 244..259 to each arch (asm-generic/unistd.h). */
#define __NR_virtio_mmio_device_add	244
#define __NR_lkl_notifier_add		245
#define __NR_lkl_notifier_del		246

#endif

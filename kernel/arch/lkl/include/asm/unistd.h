/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_UNISTD_H
#define _ASM_LKL_UNISTD_H

/* The 64-bit generic ABI: newfstatat/fstat, getrlimit/setrlimit, renameat. */
#define __ARCH_WANT_NEW_STAT
#define __ARCH_WANT_SET_GET_RLIMIT
#define __ARCH_WANT_RENAMEAT

#include <uapi/asm/unistd.h>

#define NR_syscalls (__NR_syscalls)

#endif

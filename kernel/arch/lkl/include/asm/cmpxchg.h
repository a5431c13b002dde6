/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_CMPXCHG_H
#define _ASM_LKL_CMPXCHG_H

/*
 * Kernel code is serialized by the CPU lock, but a few words (the pending
 * IRQ bitmap, shutdown state) are touched by foreign host threads too, so
 * exchange operations are real host atomics rather than IRQ-off sequences.
 */
#define arch_xchg(ptr, v)						\
	__atomic_exchange_n((ptr), (v), __ATOMIC_SEQ_CST)

#define arch_cmpxchg(ptr, o, n)						\
({									\
	__typeof__(*(ptr)) __old = (o);					\
	__atomic_compare_exchange_n((ptr), &__old, (n), 0,		\
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
	__old;								\
})

#define arch_cmpxchg_local(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))
#define arch_cmpxchg64(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))
#define arch_cmpxchg64_local(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))
#define arch_cmpxchg_relaxed(ptr, o, n)	arch_cmpxchg((ptr), (o), (n))

#endif

/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_BARRIER_H
#define _ASM_LKL_BARRIER_H

/*
 * Kernel code itself is serialized by the CPU lock (whose host semaphore
 * orders everything), but virtio devices run on other host threads and
 * share the rings with the driver: mb() must be a real fence, or the
 * driver and a device can each miss the other's update (a lost
 * notification or interrupt; seen as rare stalls under load). virt_mb()
 * and dma_mb() default to these.
 */
#define mb()	__atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb()	__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb()	__atomic_thread_fence(__ATOMIC_RELEASE)

#include <asm-generic/barrier.h>

#endif

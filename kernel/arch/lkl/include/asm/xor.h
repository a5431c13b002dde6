/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_XOR_H
#define _ASM_LKL_XOR_H

#include <asm-generic/xor.h>

/*
 * The generic templates are all there is (no SIMD here). Timing them at
 * boot (calibrate_xor_blocks) took 0.4 ms of a ~6 ms boot, and 32regs was
 * the fastest of the four on every x86-64 host measured (docs/kernel.md):
 * use it without measuring.
 */
#define XOR_SELECT_TEMPLATE(x) (&xor_block_32regs)

#endif

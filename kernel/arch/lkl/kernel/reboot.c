// SPDX-License-Identifier: GPL-2.0-only
/*
 * Every way down ends the same: the kernel is frozen where it stands and
 * the halting thread leaves its task (lkl_halt_jump, syscalls.c) and, back
 * in lkl_syscall, tears the host side down (lkl_teardown, setup.c).
 */
#include <linux/reboot.h>
#include <linux/pm.h>
#include <asm/lkl.h>

void machine_halt(void)
{
	lkl_halt_jump();
}

void machine_power_off(void)
{
	lkl_halt_jump();
}

void machine_restart(char *cmd)
{
	lkl_halt_jump();
}

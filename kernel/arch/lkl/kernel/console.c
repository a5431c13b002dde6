// SPDX-License-Identifier: GPL-2.0-only
/* printk output goes to the host's print op (a log sink on the Rust side). */
#include <linux/console.h>
#include <linux/init.h>
#include <asm/lkl.h>

static void lkl_console_write(struct console *con, const char *str, unsigned int len)
{
	if (lkl_ops->print)
		lkl_ops->print(str, len);
}

static struct console lkl_console = {
	.name	= "lkl_console",
	.write	= lkl_console_write,
	.flags	= CON_PRINTBUFFER,
	.index	= -1,
};

static int __init lkl_console_init(void)
{
	register_console(&lkl_console);
	return 0;
}
core_initcall(lkl_console_init);

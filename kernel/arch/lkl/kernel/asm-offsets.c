// SPDX-License-Identifier: GPL-2.0-only
/* No assembly needs structure offsets; Kbuild still wants the file. */
#include <linux/kbuild.h>

int main(void);

int main(void)
{
	return 0;
}

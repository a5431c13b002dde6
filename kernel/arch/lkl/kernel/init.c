// SPDX-License-Identifier: GPL-2.0-only
/*
 * How pid 1 is "run": an empty /init in rootfs and a private binfmt that
 * accepts only it. kernel_init execs /init as usual; our load_binary
 * finishes the exec and turns pid 1 into the caller's host task.
 */
#include <linux/init.h>
#include <linux/binfmts.h>
#include <linux/fs.h>
#include <linux/personality.h>
#include <linux/task_work.h>
#include <linux/string.h>
#include <linux/module.h>
#include <linux/err.h>
#include <asm/lkl.h>

static int lkl_load_init(struct linux_binprm *bprm);

static struct linux_binfmt lkl_binfmt = {
	.module		= THIS_MODULE,
	.load_binary	= lkl_load_init,
};

static int lkl_load_init(struct linux_binprm *bprm)
{
	int ret;

	if (strcmp(bprm->filename, "/init"))
		return -ENOEXEC;

	ret = begin_new_exec(bprm);
	if (ret)
		return ret;
	set_personality(PER_LINUX);
	setup_new_exec(bprm);
	set_binfmt(&lkl_binfmt);

	lkl_become_host0();
	return 0;
}

static int __init lkl_init_binfmt(void)
{
	struct file *file;

	register_binfmt(&lkl_binfmt);

	/*
	 * Read-only: pid 1 is not a kthread, so the last fput is deferred to
	 * task work; a file still open for writing would fail the exec with
	 * ETXTBSY: nothing here returns to user mode, where task work runs
	 * (docs/kernel.md).
	 */
	file = filp_open("/init", O_CREAT | O_RDONLY, 0700);
	if (IS_ERR(file))
		return PTR_ERR(file);
	filp_close(file, NULL);
	task_work_run();
	return 0;
}
late_initcall(lkl_init_binfmt);

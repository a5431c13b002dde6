/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_LKL_H
#define _ASM_LKL_LKL_H

/* Interfaces between the files of arch/lkl/kernel (not for core code). */

#include <linux/types.h>
#include <asm/host_ops.h>

struct task_struct;

extern const struct lkl_host_operations *lkl_ops;

/* exported entry points (arch/lkl/exports) */
int lkl_start_kernel(const struct lkl_host_operations *ops, const char *cmdline);
long lkl_syscall(long no, long *params);
long lkl_sys_halt(void);
int lkl_is_running(void);
int lkl_trigger_irq(int irq);
int lkl_get_free_irq(const char *user);
void lkl_put_irq(int irq, const char *user);
int lkl_interrupt_async(int tid);
long lkl_task_syscall(void *task, long no, long *params);
int lkl_process_new(void *parent, void *as, int pid, void **out);
int lkl_process_thread(void *process, void **out);
void lkl_process_set_as(void *process, void *as);
int lkl_task_pid(void *task);
void lkl_task_exit(void *task);

/* cpu.c: the lock that makes one host thread at a time the CPU. */
void lkl_cpu_init(void);
int lkl_cpu_get(void);
int lkl_cpu_try_get(void);
void lkl_cpu_release(void);
void lkl_cpu_set_owner(unsigned long host);
int lkl_cpu_owned_by_self(void);
void lkl_cpu_park_foreign(void);
void lkl_cpu_shutdown_wake(void);
extern int lkl_shutting_down;

/* notify.c */
void lkl_notify_flush(void);
bool lkl_notify_pending(void);

/* idle.c */
extern int lkl_idle_virtual;
void lkl_idle_init(void);
int lkl_idle_sched_jb(void);
int lkl_idle_run(void);
void lkl_idle_resume(struct task_struct *prev);
void lkl_idle_shutdown_wake(void);

/* irq.c */
int lkl_irqs_pending(void);
void lkl_run_irqs(void);

/* threads.c */
void lkl_threads_init(void);
int lkl_sched_jb(void);
void lkl_enter_task(struct task_struct *task);
void lkl_task_put(void);
int lkl_is_host_task(struct task_struct *task);
int lkl_host_task_marker(void *unused);
void lkl_leave(struct task_struct *task) __noreturn;
struct task_struct *__switch_to(struct task_struct *prev, struct task_struct *next);

/* syscalls.c */
void lkl_syscalls_drain(void);
void lkl_syscalls_wake_waiters(void);
void lkl_syscalls_cleanup(void);
int lkl_host0_adopt(void);
long lkl_run_as(struct task_struct *task, long (*fn)(void *), void *arg);
void lkl_exit_host_task(struct task_struct *task);
void lkl_become_host0(void);
void lkl_halt_jump(void) __noreturn;
extern struct task_struct *lkl_host0;

/* time.c */
void lkl_time_shutdown(void);

/* mm/bootmem.c */
void lkl_bootmem_init(void);
void lkl_bootmem_free(void);

/* setup.c */
void lkl_teardown(void);
extern int lkl_running;
extern unsigned long lkl_boot_caller;
extern struct lkl_sem *lkl_init_sem;

#endif

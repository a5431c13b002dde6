/* Every new task is armed before it runs: a thread made by a raw clone,
 * a fork child, a raw vfork child, a pthread. ARMED() asks the router. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "raw.h"

static volatile int thread_armed = -1, thread_done;
static int raw_thread(void *arg)
{
	(void)arg;
	thread_armed = ARMED();
	__atomic_store_n(&thread_done, 1, __ATOMIC_RELEASE);
	raw1(SYS_exit, 0);
	return 0;
}
static void *pthread_fn(void *arg)
{
	(void)arg;
	return (void *)(long)ARMED();
}

int main(void)
{
	int ok = 1;
	printf("main %d\n", ARMED());
	ok &= ARMED();
	for (int i = 0; i < 20; i++) {
		/* glibc's clone(): a raw clone system call, no TLS of glibc's. */
		char *stack = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		thread_done = 0;
		thread_armed = -1;
		int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
		if (clone(raw_thread, stack + (1 << 16), flags, NULL) < 0) { perror("clone"); return 1; }
		while (!__atomic_load_n(&thread_done, __ATOMIC_ACQUIRE))
			raw0(SYS_sched_yield);
		ok &= thread_armed == 1;
	}
	printf("raw clone threads %d\n", thread_armed);
	pthread_t t;
	void *res;
	pthread_create(&t, NULL, pthread_fn, NULL);
	pthread_join(t, &res);
	printf("pthread %ld\n", (long)res);
	ok &= res == (void *)1;
	pid_t pid = fork();
	if (pid == 0)
		_exit(ARMED() ? 0 : 3);
	int st;
	waitpid(pid, &st, 0);
	printf("fork child %d\n", WEXITSTATUS(st));
	ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
	/* A raw vfork: the child runs in our memory until it exits. */
	long v = raw0(SYS_vfork);
	if (v == 0) {
		long a = ARMED();
		raw1(SYS_exit_group, a ? 0 : 4);
	}
	waitpid((pid_t)v, &st, 0);
	printf("vfork child %d\n", WEXITSTATUS(st));
	ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
	ok &= ARMED();
	printf("%s\n", ok ? "ok" : "FAILED");
	return !ok;
}

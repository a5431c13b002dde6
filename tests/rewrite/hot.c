/* Hot raw system-call sites under the system-call tier with site
 * rewriting (docs/every-syscall.md, "Rewritten sites"). Each part prints
 * one line with the library's counters (lkl_hijack_tier_stats) before and
 * after, so that the test sees which way the calls went:
 *   hot        one `mov $nr,%eax; syscall` site called N times
 *   threads    4 threads hammering one site from before it is patched
 *   jit        a site in code generated at run time (anonymous RWX page)
 *   branch     a site a branch could land inside (cannot be proven safe)
 *   push       a site whose preceding instruction cannot be relocated
 *   syscall    syscall(SYS_getppid): the library's `syscall` hook issues
 *              the number as is, from a site that gets rewritten
 *   brk        sbrk() moving the break while malloc uses the heap: the
 *              analysis of glibc's `brk` site (made between the call and
 *              its return) must not move the break itself
 * Every call's result is checked against libc's getppid()/getpid(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "counters.h"

__attribute__((noinline)) static long site_getppid(void)
{
	long r;
	__asm__ volatile("movl $110, %%eax\n\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
	return r;
}

__attribute__((noinline)) static long site_getpid(void)
{
	long r;
	__asm__ volatile("movl $39, %%eax\n\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
	return r;
}

/* A conditional branch (never taken) whose target is the second byte of
 * the `mov`: patching the mov would break that path, so it must stay. */
__attribute__((noinline)) static long site_branch(long never)
{
	long r;
	__asm__ volatile("testq %1, %1\n\t"
			 "jnz 1f\n\t"
			 ".byte 0xb8\n"
			 "1:\n\t"
			 ".byte 0x6e, 0, 0, 0\n\t"
			 "syscall"
			 : "=a"(r)
			 : "r"(never)
			 : "rcx", "r11", "memory");
	return r;
}

/* push/pop before the syscall: nothing relocatable right before it. */
__attribute__((noinline)) static long site_push(void)
{
	long r;
	__asm__ volatile("movl $110, %%eax\n\t"
			 "pushq %%rbx\n\t"
			 "popq %%rbx\n\t"
			 "syscall"
			 : "=a"(r)
			 : : "rcx", "r11", "memory");
	return r;
}

static long want_ppid, want_pid;
static volatile int failures;

static void report(const char *what, long calls, unsigned long long a[5])
{
	unsigned long long b[5];
	counters(b);
	printf("%s calls %ld fast %llu trap %llu patched %llu refused %llu failures %d\n", what,
	       calls, b[0] - a[0], b[1] - a[1], b[3] - a[3], b[4] - a[4], failures);
	fflush(stdout);
}

static void *hammer(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++)
		if (site_getpid() != want_pid)
			__sync_fetch_and_add(&failures, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	unsigned long long c[5];
	counters_find();
	want_ppid = getppid();
	want_pid = getpid();
	printf("stats %s\n", stats ? "yes" : "no");

	counters(c);
	for (long i = 0; i < n; i++)
		if (site_getppid() != want_ppid)
			failures++;
	report("hot", n, c);

	counters(c);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, (void *)n);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	report("threads", 4 * n, c);

	/* mov $110,%eax; syscall; ret */
	unsigned char code[] = {0xb8, 0x6e, 0, 0, 0, 0x0f, 0x05, 0xc3};
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memcpy(page, code, sizeof(code));
	long (*jit)(void) = (long (*)(void))page;
	long m = n / 10;
	counters(c);
	for (long i = 0; i < m; i++)
		if (jit() != want_ppid)
			failures++;
	report("jit", m, c);
	if (memcmp(page, code, sizeof(code)) != 0)
		printf("jit code was changed\n");

	counters(c);
	for (long i = 0; i < m; i++)
		if (site_branch(0) != want_ppid)
			failures++;
	report("branch", m, c);

	counters(c);
	for (long i = 0; i < m; i++)
		if (site_push() != want_ppid)
			failures++;
	report("push", m, c);

	counters(c);
	for (long i = 0; i < n; i++)
		if (syscall(SYS_getppid) != want_ppid)
			failures++;
	report("syscall", n, c);

	counters(c);
	for (long i = 0; i < 100; i++) {
		char *p = sbrk(4096), *q = sbrk(0);
		char *m = malloc(100000);
		if (p == (void *)-1 || q != p + 4096 || !m)
			failures++;
		else
			memset(m, 1, 100000);
		free(m);
	}
	report("brk", 100, c);

	printf(failures ? "FAILED\n" : "ok\n");
	return failures != 0;
}

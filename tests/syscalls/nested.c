/* No signal handler of the program runs nested on the SIGSYS handler's
 * stack (docs/every-syscall.md, "How a call is routed"). The main thread
 * has an alternate signal stack, which the tier's SIGSYS handler uses too
 * (SA_ONSTACK), and makes calls that trap every time (code generated at
 * run time is never rewritten); another thread sends it SIGUSR1 (an
 * SA_ONSTACK handler) all the while. The handler measures how deep in the
 * alternate stack it runs. A SIGUSR1 delivered while the SIGSYS handler
 * runs would land below the SIGSYS frame: at least one signal frame
 * deeper than a SIGUSR1 raised from ordinary code, which is measured
 * first. Busybox sh's SIGCHLD overflowed Rust's 8 KiB alternate stack so.
 * Prints "base B deepest D signals N calls C" and "ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALT (256 * 1024)
static char *alt;
static volatile long deepest, handled;
static volatile int done;
static pid_t main_tid;

static void on_usr1(int sig)
{
	char here;
	(void)sig;
	long depth = (long)(alt + ALT - &here);
	if (depth > deepest)
		deepest = depth;
	handled++;
}

static void *sender(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 20000 };
	for (int i = 0; i < 3000; i++) {
		syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1);
		nanosleep(&ts, 0);
	}
	done = 1;
	return 0;
}

int main(void)
{
	alt = mmap(0, ALT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *code = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED || code == MAP_FAILED)
		return 1;
	stack_t ss = { .ss_sp = alt, .ss_size = ALT, .ss_flags = 0 };
	if (sigaltstack(&ss, 0))
		return 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigaction(SIGUSR1, &sa, 0);
	/* getpid from code generated at run time: the trap, every call. */
	static const unsigned char getpid_code[] = { 0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3 };
	memcpy(code, getpid_code, sizeof(getpid_code));
	long (*trapping)(void) = (long (*)(void))code;
	main_tid = (pid_t)syscall(SYS_gettid);
	/* From ordinary code: one signal frame deep. */
	for (int i = 0; i < 10; i++)
		raise(SIGUSR1);
	long base = deepest;
	deepest = 0;
	pthread_t t;
	pthread_create(&t, 0, sender, 0);
	long calls = 0, bad = 0;
	while (!done) {
		if (trapping() != getpid())
			bad++;
		calls++;
	}
	pthread_join(t, 0);
	printf("base %ld deepest %ld signals %ld calls %ld bad %ld\n", base, deepest, handled, calls,
	       bad);
	/* A nested delivery adds a whole signal frame (more than 1 KiB with
	 * any x86_64 vector state); leave room for the handler's own
	 * variation. */
	printf(deepest <= base + 512 && !bad ? "ok\n" : "FAILED\n");
	return 0;
}

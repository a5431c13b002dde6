/* A program that installs its own SIGSYS handler (as Go does for every
 * signal), raises SIGSYS, and tries to change the dispatch itself: it
 * keeps working, and its raw calls stay routed. argv[1]: a port the host
 * holds on 127.0.0.1 (a kernel socket can bind it, a host one cannot). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "raw.h"

static volatile int caught, code;
static void on_sys(int sig, siginfo_t *si, void *ctx)
{
	(void)sig; (void)ctx;
	caught++;
	code = si->si_code;
}
struct ksigaction { void *handler; unsigned long flags; void *restorer; unsigned long mask; };

int main(int argc, char **argv)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) != 0) { perror("sigaction"); return 1; }
	if (sigaction(SIGSYS, NULL, &old) != 0 || old.sa_sigaction != on_sys) { printf("old handler not ours\n"); return 1; }
	struct ksigaction k;
	long r = raw6(SYS_rt_sigaction, SIGSYS, 0, (long)&k, 8, 0, 0);
	if (r != 0 || k.handler != (void *)on_sys) { printf("raw rt_sigaction %ld %p\n", r, k.handler); return 1; }
	/* Block every signal, SIGSYS too: the calls must still be routed. */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	kill(getpid(), SIGSYS);
	if (caught != 1 || code != SI_USER) { printf("handler ran %d times, code %d\n", caught, code); return 1; }
	errno = 0;
	int p = prctl(59 /* PR_SET_SYSCALL_USER_DISPATCH */, 0, 0, 0, 0);
	printf("prctl %d errno %d\n", p, errno);
	if (p != -1 || errno != EBUSY) return 1;
	long s = raw3(SYS_socket, AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	long b = raw3(SYS_bind, s, (long)&a, sizeof a);
	printf("bind %ld armed %d\n", b, ARMED());
	if (b != 0 || !ARMED()) return 1;
	printf("ok\n");
	return 0;
}

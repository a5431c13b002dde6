/* Signals end blocking kernel calls of a static program's threads as on
 * the host. Four threads block in kernel calls (two in accept on one
 * listener, two in recv on accepted sockets), a fifth in read on a host
 * pipe; each gets SIGUSR1 (pthread_kill); then the main thread blocks in
 * recv and gets one too.
 * argv[1] "eintr": the handler has no SA_RESTART, every call returns
 * EINTR. "restart": SA_RESTART, the calls go on blocking after the
 * handler ran and return when there is something (a connection, a
 * byte). argv[2]: a port the host holds on 127.0.0.1 (a kernel socket can
 * bind it, a host one cannot). Prints "<mode> ok" and exits 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "raw.h"

static int handled;
static void on_usr1(int sig)
{
	(void)sig;
	__atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
}

static int ls;
static struct sockaddr_in addr;
static int served[2], clients[2];
struct result {
	long r;
	int err;
	int done;
};
#define WORKERS 5
static struct result res[WORKERS];
static int pipefd[2];

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static void finish(int i, long r)
{
	res[i].err = r < 0 ? errno : 0;
	res[i].r = r;
	__atomic_store_n(&res[i].done, 1, __ATOMIC_SEQ_CST);
}

static void *acceptor(void *p)
{
	int i = (int)(long)p;
	finish(i, accept(ls, NULL, NULL));
	return NULL;
}

static void *receiver(void *p)
{
	int i = (int)(long)p;
	char b;
	finish(i, recv(served[i - 2], &b, 1, 0));
	return NULL;
}

static void *pipe_reader(void *p)
{
	int i = (int)(long)p;
	char b;
	finish(i, read(pipefd[0], &b, 1));
	return NULL;
}

static int count_done(void)
{
	int n = 0;
	for (int i = 0; i < WORKERS; i++)
		n += __atomic_load_n(&res[i].done, __ATOMIC_SEQ_CST);
	return n;
}

static int wait_done(int want)
{
	for (int k = 0; k < 1000 && count_done() < want; k++)
		sleep_ms(10);
	return count_done();
}

static pthread_t main_thread;
static int restart_mode;

/* Signals the main thread while it blocks in recv (argument 0: the
 * thread itself, pthread_kill; 1: the process, kill, which the host may
 * hand to any thread that does not block it, this one included, and
 * which must end the main thread's call as on the host); under
 * SA_RESTART, then gives it a byte. */
static void *poke_main(void *p)
{
	sleep_ms(300);
	if (p)
		kill(getpid(), SIGUSR1);
	else
		pthread_kill(main_thread, SIGUSR1);
	if (restart_mode) {
		sleep_ms(300);
		send(clients[0], "m", 1, 0);
	}
	return NULL;
}

static int fail(const char *what)
{
	printf("FAIL %s (handled %d)\n", what, __atomic_load_n(&handled, __ATOMIC_SEQ_CST));
	for (int i = 0; i < WORKERS; i++)
		printf("  thread %d: done %d r %ld errno %d\n", i, res[i].done, res[i].r, res[i].err);
	fflush(stdout);
	_exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	restart_mode = strcmp(argv[1], "restart") == 0;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!ARMED())
		return fail("the tier is not armed");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart_mode ? SA_RESTART : 0;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return fail("sigaction");

	ls = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_family = AF_INET;
	addr.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0)
		return fail("bind: not a kernel socket");
	if (listen(ls, 16) != 0)
		return fail("listen");
	for (int i = 0; i < 2; i++) {
		clients[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(clients[i], (struct sockaddr *)&addr, sizeof addr) != 0)
			return fail("connect");
		served[i] = accept(ls, NULL, NULL);
		if (served[i] < 0)
			return fail("accept");
	}

	if (pipe(pipefd) != 0)
		return fail("pipe");
	pthread_t t[WORKERS];
	for (long i = 0; i < WORKERS; i++)
		if (pthread_create(&t[i], NULL, i < 2 ? acceptor : i < 4 ? receiver : pipe_reader,
				   (void *)i) != 0)
			return fail("pthread_create");
	sleep_ms(300);
	if (count_done() != 0)
		return fail("a call returned before any signal");
	for (int i = 0; i < WORKERS; i++)
		pthread_kill(t[i], SIGUSR1);

	if (!restart_mode) {
		if (wait_done(WORKERS) != WORKERS)
			return fail("EINTR: calls still blocked after the signals");
		for (int i = 0; i < WORKERS; i++)
			if (res[i].r != -1 || res[i].err != EINTR)
				return fail("EINTR: a call did not fail with EINTR");
	} else {
		sleep_ms(500);
		if (count_done() != 0)
			return fail("SA_RESTART: a call returned after the signal");
		for (int i = 0; i < 2; i++) {
			int c = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(c, (struct sockaddr *)&addr, sizeof addr) != 0)
				return fail("connect (restart)");
			if (send(clients[i], "x", 1, 0) != 1)
				return fail("send");
		}
		if (write(pipefd[1], "p", 1) != 1)
			return fail("write");
		if (wait_done(WORKERS) != WORKERS)
			return fail("SA_RESTART: calls never returned");
		for (int i = 0; i < WORKERS; i++)
			if (i < 2 ? res[i].r < 0 : res[i].r != 1)
				return fail("SA_RESTART: a restarted call failed");
	}
	if (__atomic_load_n(&handled, __ATOMIC_SEQ_CST) != WORKERS)
		return fail("handler count");
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);

	/* The main thread (no twin: its own calls) blocks in recv: a signal
	 * to it, then one to the process. */
	main_thread = pthread_self();
	for (long round = 0; round < 2; round++) {
		pthread_t poker;
		pthread_create(&poker, NULL, poke_main, (void *)round);
		char b;
		errno = 0;
		long r = recv(served[0], &b, 1, 0);
		int e = errno;
		pthread_join(poker, NULL);
		if (__atomic_load_n(&handled, __ATOMIC_SEQ_CST) != WORKERS + 1 + round)
			return fail("main: the handler did not run");
		if (restart_mode ? (r != 1 || b != 'm') : (r != -1 || e != EINTR)) {
			printf("main (%s): recv %ld errno %d\n", round ? "kill" : "pthread_kill", r, e);
			return fail("main thread's recv");
		}
	}
	printf("%s ok\n", argv[1]);
	return 0;
}

/*
 * C signal handlers under the hijack: what a handler may call while its
 * thread waits in a kernel call, and vfork children that reset handlers.
 * Each mode (argv[1]) prints "ok MODE ..." and exits 0, or says what went
 * wrong and exits 1; hanging is the driver's watchdog's to catch.
 *
 *   close     the handler closes the kernel socket the thread is blocked
 *             in accept() on: accept ends (EINTR), the socket is gone
 *   selfpipe  the handler writes to a host pipe (the self-pipe trick) while
 *             the thread waits in a kernel recv(): EINTR, byte there; with
 *             SA_RESTART the recv goes on and gets the data sent later
 *   nested    the handler writes to another kernel socket meanwhile: the
 *             write works or fails with EDEADLK, never hangs
 *   exit      the handler calls exit(0) meanwhile: the program ends
 *   jump      a handler leaves by siglongjmp (the alarm timeout idiom);
 *             the thread's later close of a kernel socket still closes
 *             it (the peer reads EOF)
 *   vfork     a vfork child resets SIGCHLD to SIG_DFL before exec; the
 *             parent's own SIGCHLD handler still runs, in a poll loop over
 *             a self-pipe and a kernel socket
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int listen_fd = -1, pipe_fds[2] = { -1, -1 }, other_fd = -1;
static volatile sig_atomic_t handled, nested_result, nested_errno;
static const char *mode;
static sigjmp_buf jump_env;

static void fail(const char *what)
{
	printf("%s: %s (errno %d: %s)\n", mode, what, errno, strerror(errno));
	exit(1);
}

static void on_signal(int sig)
{
	int saved = errno;
	char b = 'x';

	(void)sig;
	handled++;
	if (!strcmp(mode, "close")) {
		close(listen_fd);
	} else if (!strcmp(mode, "selfpipe") || !strcmp(mode, "restart") ||
		   !strcmp(mode, "vfork")) {
		if (write(pipe_fds[1], &b, 1) != 1)
			_exit(3);
	} else if (!strcmp(mode, "nested")) {
		nested_result = write(other_fd, &b, 1);
		nested_errno = errno;
	} else if (!strcmp(mode, "exit")) {
		exit(0);
	} else if (!strcmp(mode, "jump")) {
		siglongjmp(jump_env, 1);
	}
	errno = saved;
}

static void handle(int sig, int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		fail("sigaction");
}

static int tcp_listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (void *)addr, sizeof(*addr)) || listen(fd, 4) ||
	    getsockname(fd, (void *)addr, &len))
		fail("listener");
	return fd;
}

static int tcp_connect(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (const void *)addr, sizeof(*addr)))
		return -1;
	return fd;
}

struct later {
	pthread_t target;
	int sig, delay_ms, send_fd;
};

/* After delay_ms, signals the target thread; then sends a byte on
 * send_fd (if any) a little later. */
static void *signal_later(void *arg)
{
	struct later *l = arg;
	struct timespec ts = { 0, l->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	pthread_kill(l->target, l->sig);
	if (l->send_fd >= 0) {
		nanosleep(&ts, NULL);
		if (send(l->send_fd, "d", 1, 0) != 1)
			_exit(4);
	}
	return NULL;
}

static pthread_t start_later(int sig, int delay_ms, int send_fd)
{
	static struct later l;
	pthread_t t;

	l.target = pthread_self();
	l.sig = sig;
	l.delay_ms = delay_ms;
	l.send_fd = send_fd;
	if (pthread_create(&t, NULL, signal_later, &l))
		fail("pthread_create");
	return t;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	char buf[8];
	pthread_t t;
	int a, b, r;

	mode = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IONBF, 0);
	if (pipe(pipe_fds))
		fail("pipe");
	listen_fd = tcp_listener(&addr);

	if (!strcmp(mode, "close")) {
		handle(SIGUSR1, 0);
		t = start_later(SIGUSR1, 100, -1);
		r = accept(listen_fd, NULL, NULL);
		if (r != -1 || errno != EINTR)
			fail("accept was not interrupted");
		pthread_join(t, NULL);
		if (accept(listen_fd, NULL, NULL) != -1 || errno != EBADF)
			fail("the descriptor is still open");
		if (tcp_connect(&addr) != -1 || errno != ECONNREFUSED)
			fail("the socket still listens");
		printf("ok close\n");
		return 0;
	}

	a = tcp_connect(&addr);
	b = accept(listen_fd, NULL, NULL);
	if (a < 0 || b < 0)
		fail("connection");

	if (!strcmp(mode, "selfpipe")) {
		handle(SIGUSR1, 0);
		t = start_later(SIGUSR1, 100, -1);
		if (recv(b, buf, 1, 0) != -1 || errno != EINTR)
			fail("recv was not interrupted");
		pthread_join(t, NULL);
		if (read(pipe_fds[0], buf, 1) != 1)
			fail("no byte in the self-pipe");
		/* SA_RESTART: the call goes on and gets what is sent later. */
		mode = "restart";
		handle(SIGUSR1, SA_RESTART);
		t = start_later(SIGUSR1, 100, a);
		if (recv(b, buf, 1, 0) != 1 || buf[0] != 'd')
			fail("restarted recv");
		pthread_join(t, NULL);
		if (read(pipe_fds[0], buf, 1) != 1 || handled != 2)
			fail("handler count");
		printf("ok selfpipe\n");
		return 0;
	}

	if (!strcmp(mode, "nested")) {
		other_fd = a;
		handle(SIGUSR1, 0);
		t = start_later(SIGUSR1, 100, -1);
		r = recv(b, buf, 1, 0);
		if (r != -1 || errno != EINTR)
			fail("recv was not interrupted");
		pthread_join(t, NULL);
		if (nested_result == 1) {
			if (recv(b, buf, 1, 0) != 1)
				fail("the handler's byte did not arrive");
			printf("ok nested: the handler's write went\n");
		} else if (nested_result == -1 && nested_errno == EDEADLK) {
			printf("ok nested: the handler's write said EDEADLK\n");
		} else {
			errno = nested_errno;
			fail("the handler's write");
		}
		return 0;
	}

	if (!strcmp(mode, "jump")) {
		struct pollfd p = { b, POLLIN, 0 };

		handle(SIGUSR1, 0);
		if (!sigsetjmp(jump_env, 1)) {
			raise(SIGUSR1);
			fail("the handler did not jump");
		}
		if (close(a))
			fail("close");
		if (poll(&p, 1, 10000) != 1)
			fail("the peer never saw the close");
		if (recv(b, buf, 1, 0) != 0)
			fail("the peer read something, not EOF");
		printf("ok jump\n");
		return 0;
	}

	if (!strcmp(mode, "exit")) {
		handle(SIGUSR1, 0);
		start_later(SIGUSR1, 100, -1);
		printf("waiting\n");
		recv(b, buf, 1, 0);
		fail("recv returned to a program that exited in its handler");
	}

	if (!strcmp(mode, "vfork")) {
		struct pollfd p[2] = { { pipe_fds[0], POLLIN, 0 }, { b, POLLIN, 0 } };
		int status, reaped = 0, i;

		handle(SIGCHLD, SA_RESTART);
		for (i = 0; i < 3; i++) {
			pid_t pid = vfork();

			if (pid == 0) {
				/* As Python's subprocess and dash do before exec. */
				signal(SIGCHLD, SIG_DFL);
				execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
				_exit(127);
			}
			if (pid < 0)
				fail("vfork");
		}
		while (reaped < 3) {
			r = poll(p, 2, 20000);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				fail("poll: SIGCHLD never came");
			if (p[1].revents)
				fail("the kernel socket is readable");
			if (read(pipe_fds[0], buf, 1) != 1)
				fail("read self-pipe");
			while (waitpid(-1, &status, WNOHANG) > 0) {
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
					fail("child status");
				reaped++;
			}
		}
		printf("ok vfork\n");
		return 0;
	}

	printf("unknown mode %s\n", mode);
	return 2;
}

/* A fork no hook of the library sees, in a tree: a static program's
 * fork() (argv[1] "libc") or a raw syscall(SYS_fork) (argv[1] "raw", with
 * the system-call tier on). The child must be a kernel process of its
 * own with a copy of the parent's descriptor table, never a user of the
 * parent's channel (whose calls the server would run as the parent's,
 * copying their results into the parent's memory).
 * argv[1] "thread": a static program's fork() from a second thread (which
 * runs without the library's state: the tier cannot ask the server to
 * fork): the child is a kernel process of its own with no kernel
 * descriptors (EBADF on the inherited one), whose new sockets work.
 * argv[2]: a port the host holds on 127.0.0.1 (a kernel socket can bind
 * it, a host one cannot). Prints "fork ok" and exits 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	return 1;
}

/* The child: its copy of the parent's socket shows the parent's address
 * (written into the child's memory), a datagram it sends from a new
 * socket reaches the parent's, and its close leaves the parent's open. */
static int child(int s, int port)
{
	struct sockaddr_in b;
	socklen_t l = sizeof(b);
	memset(&b, 0xa5, sizeof(b));
	if (getsockname(s, (struct sockaddr *)&b, &l) != 0)
		return fail("child getsockname");
	if (l != sizeof(b) || ntohs(b.sin_port) != port) {
		printf("FAIL child getsockname: port %d len %d\n", ntohs(b.sin_port), (int)l);
		return 1;
	}
	int t = socket(AF_INET, SOCK_DGRAM, 0);
	if (t < 0)
		return fail("child socket");
	if (sendto(t, "child", 5, 0, (struct sockaddr *)&b, sizeof(b)) != 5)
		return fail("child sendto");
	close(t);
	close(s);
	return 0;
}

/* From a second thread: the child's inherited descriptor is not the
 * kernel's (EBADF), its own new socket reaches the parent's. */
static int orphan(int s, int port)
{
	struct sockaddr_in b = { .sin_family = AF_INET, .sin_port = htons(port) };
	b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct sockaddr_in g;
	socklen_t l = sizeof(g);
	if (getsockname(s, (struct sockaddr *)&g, &l) == 0 || errno != EBADF)
		return fail("thread child getsockname (EBADF expected)");
	int t = socket(AF_INET, SOCK_DGRAM, 0);
	if (t < 0)
		return fail("thread child socket");
	if (sendto(t, "child", 5, 0, (struct sockaddr *)&b, sizeof(b)) != 5)
		return fail("thread child sendto");
	return 0;
}

struct job {
	int s, port;
	pid_t pid;
};

static void *forker(void *arg)
{
	struct job *j = arg;
	j->pid = fork();
	if (j->pid == 0) {
		int r = orphan(j->s, j->port);
		fflush(stdout);
		_exit(r);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int raw = strcmp(argv[1], "raw") == 0;
	int port = atoi(argv[2]);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		return fail("bind (a kernel socket can)");
	pid_t pid;
	if (strcmp(argv[1], "thread") == 0) {
		struct job j = { s, port, -1 };
		pthread_t th;
		if (pthread_create(&th, NULL, forker, &j) != 0 || pthread_join(th, NULL) != 0)
			return fail("pthread");
		int st;
		if (j.pid < 0 || waitpid(j.pid, &st, 0) != j.pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("FAIL thread child status %#x\n", st);
			return 1;
		}
		char buf[16];
		if (recv(s, buf, sizeof(buf), MSG_DONTWAIT) != 5)
			return fail("parent recv from the thread's child");
		printf("fork ok\n");
		return 0;
	}
	pid = raw ? (pid_t)syscall(SYS_fork) : fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		int r = child(s, port);
		fflush(stdout);
		_exit(r);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL child status %#x\n", st);
		return 1;
	}
	char buf[16];
	ssize_t n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != 5 || memcmp(buf, "child", 5) != 0)
		return fail("parent recv (its socket open after the child's close)");
	/* Twice: the parent's channel still serves it after a child came and
	 * went, and a second child is as good as the first. */
	pid = raw ? (pid_t)syscall(SYS_fork) : fork();
	if (pid == 0) {
		int r = child(s, port);
		fflush(stdout);
		_exit(r);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return fail("second child");
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	if (n != 5)
		return fail("parent recv 2");
	printf("fork ok\n");
	return 0;
}

/* posix_spawn with file actions on kernel descriptors, from a process of
 * the tree (glibc's own spawn runs them with internal calls no hook sees).
 * Prints one line per case:
 * - inetd style: `cat` spawned (posix_spawnp) with a kernel connection
 *   dup2'd onto its stdin and stdout, the other kernel sockets closed by
 *   the actions; the parent sends a line through the kernel's loopback
 *   and reads it back from cat;
 * - attributes: `sh` spawned (posix_spawn) with POSIX_SPAWN_SETSID and a
 *   signal mask, a kernel socket on its stdout (via addopen of /dev/null
 *   onto stdin then dup2): it reports whether it leads its own session and
 *   whether SIGUSR2 is blocked;
 * - a kernel socket kept without actions (not close-on-exec): the child
 *   finds it under the same number;
 * - a program that does not exist: ENOENT from posix_spawn and
 *   posix_spawnp, with actions on a kernel socket. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "tree.h"

static void reap(pid_t pid, const char *what)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "%s: child failed (status %#x)\n", what, status);
		exit(2);
	}
}

static void inetd(int l, const struct sockaddr_in *a)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { "cat", NULL };
	char buf[256];
	const char msg[] = "through the kernel\n";
	int c, s, rc;
	pid_t pid;

	s = pair(l, a, &c, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, s, 0);
	posix_spawn_file_actions_adddup2(&fa, s, 1);
	posix_spawn_file_actions_addclose(&fa, s);
	posix_spawn_file_actions_addclose(&fa, c);
	rc = posix_spawnp(&pid, "cat", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "posix_spawnp cat: %s\n", strerror(rc));
		exit(2);
	}
	close(s);
	if (write(c, msg, strlen(msg)) != (ssize_t)strlen(msg) || shutdown(c, SHUT_WR)) {
		perror("write");
		exit(2);
	}
	read_all(c, buf, sizeof(buf));
	reap(pid, "cat");
	close(c);
	printf("cat:%s", buf);
}

/* After posix_spawn of a shell (@rc, @pid) given socket @s: what it wrote
 * there, read from the other end @c once it is the only one open. */
static void sh_output(int rc, pid_t pid, int s, int c, char *buf, size_t size)
{
	if (rc) {
		fprintf(stderr, "posix_spawn sh: %s\n", strerror(rc));
		exit(2);
	}
	close(s);
	read_all(c, buf, size);
	reap(pid, "sh");
	close(c);
}

static void attributes(int l, const struct sockaddr_in *a)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t mask;
	char *argv[] = { "sh", "-c",
		"read -r _ _ _ _ _ sid _ < /proc/$$/stat; blk=$(grep SigBlk /proc/$$/status);"
		"[ \"$sid\" = $$ ] && echo setsid; echo \"$blk\"", NULL };
	char buf[256];
	int c, s, rc;
	pid_t pid;

	s = pair(l, a, &c, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, s, 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	posix_spawnattr_setsigmask(&at, &mask);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	sh_output(rc, pid, s, c, buf, sizeof(buf));
	/* SIGUSR2 (12) is bit 11: 0x800 in the mask's last digits. */
	printf("sh:%s", strstr(buf, "setsid\n") ? "setsid\n" : buf);
	printf("sigmask:%s\n", strstr(buf, "SigBlk:\t0000000000000800") ? "usr2" : buf);
}

static void inherited(int l, const struct sockaddr_in *a)
{
	char num[16], *argv[] = { "sh", "-c", "echo kept >&$0", num, NULL };
	char buf[256];
	int c, s, rc;
	pid_t pid;

	s = pair(l, a, &c, 0);
	snprintf(num, sizeof(num), "%d", s);
	/* No file actions: the socket is not close-on-exec, so the new image
	 * has it under the same number, as on Linux. */
	rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
	sh_output(rc, pid, s, c, buf, sizeof(buf));
	printf("inherited:%s", buf);
}

static void missing(int l, const struct sockaddr_in *a)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { "nope", NULL };
	int c, s, r1, r2;
	pid_t pid = 0;

	s = pair(l, a, &c, 0);
	fcntl(s, F_SETFD, FD_CLOEXEC);
	fcntl(c, F_SETFD, FD_CLOEXEC);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, s, 1);
	r1 = posix_spawn(&pid, "/nonexistent/lkl-hijack-nope", &fa, NULL, argv, environ);
	r2 = posix_spawnp(&pid, "lkl-hijack-no-such-program", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(s);
	close(c);
	printf("missing:%s:%s\n", r1 == ENOENT ? "ENOENT" : strerror(r1),
	       r2 == ENOENT ? "ENOENT" : strerror(r2));
}

int main(void)
{
	struct sockaddr_in a;
	int l = tree_listener(&a);

	inetd(l, &a);
	attributes(l, &a);
	inherited(l, &a);
	missing(l, &a);
	return 0;
}

/* system() and popen() from a process of the tree whose kernel sockets
 * are not close-on-exec (glibc starts their shell with an internal spawn
 * no hook sees; the library runs such a call itself). Prints one line per
 * case:
 * - fast: with no kernel descriptor an exec would keep, system and popen
 *   are glibc's (no fork: the pthread_atfork handler does not run);
 * - null: system(NULL) finds the shell;
 * - system: `echo >&N` on an inherited kernel socket reaches the parent
 *   through the kernel, and system returns the shell's exit status;
 * - cloexec: a kernel socket made with SOCK_CLOEXEC is not in the shell,
 *   one without it is;
 * - ioctl: FIONCLEX and FIOCLEX (Python's os.set_inheritable) change a
 *   kernel socket's close-on-exec as fcntl does;
 * - popen-r, popen-w: the shell writes to an inherited kernel socket and
 *   to the pipe, or copies the pipe onto the kernel socket; pclose
 *   returns its status;
 * - others: a popen shell does not have the pipe of another popen stream
 *   (POSIX); "e" makes the stream close-on-exec;
 * - udp: the same through a connected kernel UDP socket;
 * - signals: the shell has SIGINT and SIGQUIT at their default (the
 *   caller ignores them while it waits) and SIGCHLD not blocked; the
 *   caller's SIGINT handler is back afterwards;
 * - mode: a bad mode is EINVAL. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tree.h"

static volatile int forks;

static void count_fork(void)
{
	forks++;
}

/* Reads @c to its end into @buf, without the last newline. */
static void read_line(int c, char *buf, size_t size)
{
	size_t len;

	read_all(c, buf, size);
	len = strlen(buf);
	if (len && buf[len - 1] == '\n')
		buf[len - 1] = 0;
}

/* One line of @f, without its newline. */
static void line_of(FILE *f, char *buf, size_t size)
{
	if (!fgets(buf, size, f))
		buf[0] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

static FILE *must_popen(const char *cmd, const char *mode)
{
	FILE *f = popen(cmd, mode);

	if (!f) {
		perror("popen");
		exit(2);
	}
	return f;
}

static const char *path(int before)
{
	return forks > before ? "own" : "glibc";
}

static void fast(void)
{
	char line[64];
	int before = forks, r, st;
	FILE *f;

	r = system("exit 0");
	f = must_popen("echo fast", "r");
	line_of(f, line, sizeof(line));
	st = pclose(f);
	printf("fast:%d:%s:%d:%s\n", r, line, st, path(before));
}

static void with_system(int l, const struct sockaddr_in *a)
{
	char cmd[128], buf[64];
	int c, s, r, before = forks;

	s = pair(l, a, &c, 0);
	snprintf(cmd, sizeof(cmd), "echo system >&%d; exit 3", s);
	r = system(cmd);
	close(s);
	read_line(c, buf, sizeof(buf));
	close(c);
	printf("system:%s:%d:%s\n", buf, WIFEXITED(r) ? WEXITSTATUS(r) : -1, path(before));
}

/* Two kernel sockets, one that must reach system's shell and one that
 * must not: made so by the socket's flags, or (@by_ioctl) made the other
 * way and changed with FIONCLEX and FIOCLEX. */
static void inherit(const char *name, int l, const struct sockaddr_in *a, int by_ioctl)
{
	char cmd[160], kept[64], gone[64];
	int c, s, kc, ks, r;

	s = pair(l, a, &c, by_ioctl ? SOCK_CLOEXEC : 0);
	ks = pair(l, a, &kc, by_ioctl ? 0 : SOCK_CLOEXEC);
	if (by_ioctl && (ioctl(s, FIONCLEX) != 0 || ioctl(ks, FIOCLEX) != 0))
		perror("ioctl");
	snprintf(cmd, sizeof(cmd), "(echo x >&%d) 2>/dev/null && exit 1; echo %s >&%d", ks, name, s);
	r = system(cmd);
	close(s);
	close(ks);
	read_line(c, kept, sizeof(kept));
	read_line(kc, gone, sizeof(gone));
	close(c);
	close(kc);
	printf("%s:%s:%s:%d\n", name, kept, gone[0] ? gone : "gone", WIFEXITED(r) ? WEXITSTATUS(r) : -1);
}

static void popen_read(int l, const struct sockaddr_in *a)
{
	char cmd[128], line[64], buf[64];
	int c, s, st, before = forks;
	FILE *f;

	s = pair(l, a, &c, 0);
	snprintf(cmd, sizeof(cmd), "echo popen >&%d; echo piped", s);
	f = must_popen(cmd, "r");
	line_of(f, line, sizeof(line));
	st = pclose(f);
	close(s);
	read_line(c, buf, sizeof(buf));
	close(c);
	printf("popen-r:%s:%s:%d:%s\n", line, buf, st, path(before));
}

static void popen_write(int l, const struct sockaddr_in *a)
{
	char cmd[128], buf[64];
	int c, s, st;
	FILE *f;

	s = pair(l, a, &c, 0);
	snprintf(cmd, sizeof(cmd), "cat >&%d; exit 4", s);
	f = must_popen(cmd, "w");
	fputs("written\n", f);
	st = pclose(f);
	close(s);
	read_line(c, buf, sizeof(buf));
	close(c);
	printf("popen-w:%s:%d\n", buf, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void others(int l, const struct sockaddr_in *a)
{
	char cmd[256], link[64], pipe[64], line[64], buf[64];
	int c, s, n;
	FILE *f1, *f2;

	s = pair(l, a, &c, 0);
	f1 = must_popen("cat >/dev/null", "w");
	/* The other stream's pipe, by identity (its number may be reused). */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fileno(f1));
	n = readlink(link, pipe, sizeof(pipe) - 1);
	pipe[n > 0 ? n : 0] = 0;
	snprintf(cmd, sizeof(cmd),
		 "if ls -l /proc/$$/fd | grep -qF '%s'; then echo open; else echo closed; fi;"
		 "echo seen >&%d", pipe, s);
	f2 = must_popen(cmd, "re");
	line_of(f2, line, sizeof(line));
	printf("others:%s:%s:%s:", line, fcntl(fileno(f1), F_GETFD) & FD_CLOEXEC ? "cloexec" : "inherit",
	       fcntl(fileno(f2), F_GETFD) & FD_CLOEXEC ? "cloexec" : "inherit");
	if (pclose(f2) || pclose(f1)) {
		fprintf(stderr, "others: a shell failed\n");
		exit(2);
	}
	close(s);
	read_line(c, buf, sizeof(buf));
	close(c);
	printf("%s\n", buf);
}

static void udp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char cmd[128], buf[64] = "";
	int r = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t n;

	if (r < 0 || u < 0 || bind(r, (void *)&a, sizeof(a)) || getsockname(r, (void *)&a, &len) ||
	    connect(u, (void *)&a, sizeof(a))) {
		perror("udp");
		exit(2);
	}
	snprintf(cmd, sizeof(cmd), "printf udp >&%d", u);
	if (system(cmd)) {
		fprintf(stderr, "udp: the shell failed\n");
		exit(2);
	}
	n = recv(r, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = 0;
	printf("udp:%s\n", buf);
	close(r);
	close(u);
}

static void on_int(int sig)
{
	(void)sig;
}

static void signals(int l, const struct sockaddr_in *a)
{
	char cmd[160], buf[256];
	struct sigaction sa = { .sa_handler = on_int }, old;
	unsigned long ign = 0, blk = 0;
	int c, s;
	char *p;

	sigaction(SIGINT, &sa, NULL);
	s = pair(l, a, &c, 0);
	snprintf(cmd, sizeof(cmd), "grep -E '^Sig(Ign|Blk)' /proc/$$/status >&%d", s);
	system(cmd);
	close(s);
	read_line(c, buf, sizeof(buf));
	close(c);
	if ((p = strstr(buf, "SigIgn:")))
		ign = strtoul(p + 7, NULL, 16);
	if ((p = strstr(buf, "SigBlk:")))
		blk = strtoul(p + 7, NULL, 16);
	sigaction(SIGINT, NULL, &old);
	printf("signals:%s:%s:%s\n",
	       ign & ((1UL << (SIGINT - 1)) | (1UL << (SIGQUIT - 1))) ? "ignored" : "default",
	       blk & (1UL << (SIGCHLD - 1)) ? "chld-blocked" : "chld-open",
	       old.sa_handler == on_int ? "restored" : "lost");
}

static void bad_mode(int l, const struct sockaddr_in *a)
{
	int c, s;
	FILE *f;

	s = pair(l, a, &c, 0);
	errno = 0;
	f = popen("true", "rw");
	printf("mode:%s\n", !f && errno == EINVAL ? "EINVAL" : "accepted");
	close(s);
	close(c);
}

int main(void)
{
	struct sockaddr_in a;
	int l = tree_listener(&a);

	pthread_atfork(count_fork, NULL, NULL);
	fast();
	printf("null:%s\n", system(NULL) ? "shell" : "none");
	with_system(l, &a);
	inherit("cloexec", l, &a, 0);
	inherit("ioctl", l, &a, 1);
	popen_read(l, &a);
	popen_write(l, &a);
	others(l, &a);
	udp();
	signals(l, &a);
	bad_mode(l, &a);
	return 0;
}

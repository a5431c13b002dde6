/* What the tree's C test programs share: a kernel listener on the
 * loopback, connected pairs of sockets through it, reading a socket to
 * its end, and whether the host's own TCP table has a port (a listener
 * of the tree's kernel is not there). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener(struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (void *)a, sizeof(*a)) || listen(l, 4) ||
	    getsockname(l, (void *)a, &len)) {
		perror("listener");
		exit(2);
	}
	return l;
}

/* A connected pair of kernel sockets through listener @l at @a
 * (close-on-exec if @flags has SOCK_CLOEXEC): *c the client's end, the
 * accepted end returned. */
static inline int pair(int l, const struct sockaddr_in *a, int *c, int flags)
{
	int s;

	*c = socket(AF_INET, SOCK_STREAM | flags, 0);
	if (*c < 0 || connect(*c, (const void *)a, sizeof(*a)) ||
	    (s = accept4(l, NULL, NULL, flags)) < 0) {
		perror("connect");
		exit(2);
	}
	return s;
}

/* Reads @c to its end into @buf (NUL-terminated). */
static inline void read_all(int c, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size - 1 && (n = read(c, buf + got, size - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
}

/* True if the host's own TCP table has a socket on local port @port: a
 * listener of the tree's kernel is not there. */
static int host_listens(unsigned port)
{
	char line[512], want[16];
	FILE *f = fopen("/proc/net/tcp", "r");
	int found = 0;

	snprintf(want, sizeof(want), ":%04X ", port);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, want))
			found = 1;
	if (f)
		fclose(f);
	return found;
}

/* The listener a program's cases connect through: close-on-exec (only
 * the sockets a case gives its child reach it), and the kernel's, not the
 * host's (else exit 2). stdout unbuffered, so that children's lines and
 * ours come in order. */
static inline int tree_listener(struct sockaddr_in *a)
{
	int l = listener(a);

	fcntl(l, F_SETFD, FD_CLOEXEC);
	if (host_listens(ntohs(a->sin_port))) {
		fprintf(stderr, "the host has the listener: not the tree's kernel\n");
		exit(2);
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	return l;
}

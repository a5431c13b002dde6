/* What the tree's C test programs share: a kernel listener on the
 * loopback, and whether the host's own TCP table has a port (a listener
 * of the tree's kernel is not there). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

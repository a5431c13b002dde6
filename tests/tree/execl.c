/* execl, execlp and execle from a process of the tree: the new image keeps
 * a kernel socket dup2'd onto its stdin and stdout (inetd style), and
 * arguments past the five that travel in registers arrive intact. Then
 * stdio on such a socket: in a new image (fgets/printf on stdin/stdout)
 * and in the same process right after the dup2s.
 * Prints one line per case, as the peer end of each socket read it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char script[] = "read x; echo \"$0:$x:$1:$2:$3:$4:$5:${E:-none}\"";

#include "tree.h"

static void run(int l, const struct sockaddr_in *a, int kind, const char *tag)
{
	char line[256];
	int c = socket(AF_INET, SOCK_STREAM, 0), s, n, status;
	pid_t pid;

	if (c < 0 || connect(c, (const void *)a, sizeof(*a)) || (s = accept(l, NULL, NULL)) < 0) {
		perror("connect");
		exit(2);
	}
	pid = fork();
	if (pid == 0) {
		char *env[] = { "E=env", NULL };

		dup2(s, 0);
		dup2(s, 1);
		if (kind == 3)
			execl("/proc/self/exe", "execl", "stdio", (char *)NULL);
		if (kind == 4) {
			char got[64];

			if (!fgets(got, sizeof(got), stdin))
				_exit(4);
			printf("same-process:%s", got);
			fflush(stdout);
			_exit(0);
		}
		if (kind == 0)
			execl("/bin/sh", "sh", "-c", script, "a0", "a1", "a2", "a3", "a4", "a5", (char *)NULL);
		else if (kind == 1)
			execlp("sh", "sh", "-c", script, "p0", "p1", "p2", "p3", "p4", "p5", (char *)NULL);
		else
			execle("/bin/sh", "sh", "-c", script, "e0", "e1", "e2", "e3", "e4", "e5", (char *)NULL, env);
		perror("exec");
		_exit(3);
	}
	close(s);
	/* write, not dprintf: glibc's stdio writes with its internal __write,
	 * which no hook sees. */
	snprintf(line, sizeof(line), "%s\n", tag);
	if (write(c, line, strlen(line)) < 0) {
		perror("write");
		exit(2);
	}
	n = read(c, line, sizeof(line) - 1);
	waitpid(pid, &status, 0);
	line[n > 0 ? n : 0] = 0;
	printf("%s", line);
	fflush(stdout);
	close(c);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	int l;

	if (argc > 1 && !strcmp(argv[1], "stdio")) {
		char got[64];

		if (!fgets(got, sizeof(got), stdin))
			return 4;
		printf("new-image:%s", got);
		return 0;
	}
	l = listener(&a);
	if (host_listens(ntohs(a.sin_port))) {
		fprintf(stderr, "the host has the listener: not the tree's kernel\n");
		return 2;
	}

	run(l, &a, 0, "l");
	run(l, &a, 1, "lp");
	run(l, &a, 2, "le");
	run(l, &a, 3, "fgets");
	run(l, &a, 4, "fgets");
	return 0;
}

// siglongjmp out of a SIGALRM handler that interrupted a blocking accept(),
// three times; the kernel must serve the calls that follow (tests/hijack_tree.rs).
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static sigjmp_buf jb;
static void on_alarm(int s) { siglongjmp(jb, 1); }
int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	bind(l, (void *)&a, sizeof a); listen(l, 4); getsockname(l, (void *)&a, &len);
	signal(SIGALRM, on_alarm);
	for (int round = 0; round < 3; round++) {
		if (sigsetjmp(jb, 1) == 0) {
			alarm(1);
			accept(l, 0, 0);          /* blocks: nobody connects */
			printf("accept returned?\n");
		}
		/* out of the handler by siglongjmp: the kernel must still serve */
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (void *)&a, sizeof a)) { perror("connect"); return 1; }
		int s = accept(l, 0, 0);
		if (s < 0) { perror("accept"); return 1; }
		write(c, "x", 1); char b; read(s, &b, 1);
		close(c); close(s);
		printf("round %d ok\n", round);
	}
	return 0;
}

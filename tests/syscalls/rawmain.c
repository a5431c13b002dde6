#include <stdio.h>
#include <stdlib.h>
int raw_exchange(const char *ip, int port, char *reply, int n);
int main(int argc, char **argv)
{
	char reply[256];
	int r = raw_exchange(argv[1], atoi(argv[2]), reply, sizeof reply);
	if (r < 0) {
		printf("failed %d\n", r);
		return 1;
	}
	printf("reply %s\n", reply);
	return 0;
}

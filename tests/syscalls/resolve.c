/* Resolves argv[1] with the C library's getaddrinfo (musl's resolver,
 * which reads /etc/resolv.conf itself when linked statically) and prints
 * each IPv4 address. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct addrinfo hints, *res, *p;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (argc != 2)
		return 2;
	int r = getaddrinfo(argv[1], NULL, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(r));
		return 1;
	}
	for (p = res; p; p = p->ai_next) {
		char s[INET_ADDRSTRLEN];
		struct sockaddr_in *a = (struct sockaddr_in *)p->ai_addr;
		inet_ntop(AF_INET, &a->sin_addr, s, sizeof s);
		printf("resolved %s\n", s);
	}
	freeaddrinfo(res);
	return 0;
}

/* A UDP socket on a tap: lkl_netdev_tap_create, lkl_netdev_add, boot,
 * lkl_if_up, lkl_if_set_ipv4, a datagram to the host's end of the tap and
 * its answer back (LKL's net-test pattern). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lkl.h>
#include <lkl_host.h>

int main(int argc, char **argv)
{
	struct lkl_sockaddr_in me, host, from;
	struct lkl_netdev *nd;
	struct __lkl__kernel_timespec ts = { 5, 0 };
	int id, ifindex, from_len = sizeof(from);
	char buf[128];
	long r, fd;

	if (argc != 5) {
		fprintf(stderr, "usage: tap TAP MY_IP HOST_IP PORT\n");
		return 2;
	}
	nd = lkl_netdev_tap_create(argv[1], 0);
	if (!nd)
		return 1;
	id = lkl_netdev_add(nd, NULL);
	if (id < 0) {
		printf("netdev_add: %s\n", lkl_strerror(id));
		return 1;
	}
	lkl_host_ops.print = NULL;
	r = lkl_start_kernel(&lkl_host_ops, "mem=64M");
	if (r < 0) {
		printf("start: %s\n", lkl_strerror(r));
		return 1;
	}
	ifindex = lkl_netdev_get_ifindex(id);
	printf("ifindex %d\n", ifindex);
	printf("if_up %d\n", lkl_if_up(ifindex));
	printf("set_ipv4 %d\n", lkl_if_set_ipv4(ifindex, inet_addr(argv[2]), 24));
	printf("set_mtu %d\n", lkl_if_set_mtu(ifindex, 1400));
	printf("gateway %d\n", lkl_set_ipv4_gateway(inet_addr(argv[3])));

	fd = lkl_sys_socket(LKL_AF_INET, LKL_SOCK_DGRAM, 0);
	memset(&me, 0, sizeof(me));
	me.sin_family = LKL_AF_INET;
	me.sin_addr.s_addr = inet_addr(argv[2]);
	me.sin_port = htons(atoi(argv[4]) + 1);
	r = lkl_sys_bind(fd, (struct lkl_sockaddr *)&me, sizeof(me));
	printf("bind %ld\n", r);
	memset(&host, 0, sizeof(host));
	host.sin_family = LKL_AF_INET;
	host.sin_addr.s_addr = inet_addr(argv[3]);
	host.sin_port = htons(atoi(argv[4]));
	r = lkl_sys_sendto(fd, "ping from liblkl", 16, 0, (struct lkl_sockaddr *)&host,
			   sizeof(host));
	printf("sendto %ld\n", r);
	{
		struct lkl_pollfd p = { .fd = fd, .events = LKL_POLLIN };

		r = lkl_sys_ppoll(&p, 1, &ts, NULL, 8);
		printf("poll %ld\n", r);
	}
	memset(buf, 0, sizeof(buf));
	r = lkl_sys_recvfrom(fd, buf, sizeof(buf) - 1, LKL_MSG_DONTWAIT,
			     (struct lkl_sockaddr *)&from, &from_len);
	printf("recvfrom %ld '%s' from %s\n", r, buf,
	       inet_ntoa(*(struct in_addr *)&from.sin_addr));
	lkl_sys_close(fd);
	printf("halt %ld\n", lkl_sys_halt());
	return 0;
}

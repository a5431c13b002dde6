/* The same exchange as tap.c, with the interface set up by the JSON
 * config: lkl_load_config_json, _pre (the tap), boot, _post (up, address,
 * gateway), as LKL's hijack does it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lkl.h>
#include <lkl_host.h>

int main(int argc, char **argv)
{
	struct lkl_config cfg;
	struct lkl_sockaddr_in host;
	struct __lkl__kernel_timespec ts = { 5, 0 };
	struct lkl_pollfd p;
	char json[512], buf[128];
	long r, fd;

	if (argc != 5) {
		fprintf(stderr, "usage: tap_config TAP MY_IP HOST_IP PORT\n");
		return 2;
	}
	snprintf(json, sizeof(json),
		 "{\"interfaces\": [{\"type\": \"tap\", \"param\": \"%s\", \"ip\": \"%s\","
		 " \"masklen\": \"24\", \"offload\": \"0\"}], \"gateway\": \"%s\"}",
		 argv[1], argv[2], argv[3]);
	memset(&cfg, 0, sizeof(cfg));
	printf("load %d\n", lkl_load_config_json(&cfg, json));
	printf("pre %d\n", lkl_load_config_pre(&cfg));
	lkl_host_ops.print = NULL;
	r = lkl_start_kernel(&lkl_host_ops, "mem=64M %s", cfg.boot_cmdline);
	printf("start %ld\n", r);
	printf("post %d\n", lkl_load_config_post(&cfg));
	lkl_unload_config(&cfg);

	fd = lkl_sys_socket(LKL_AF_INET, LKL_SOCK_DGRAM, 0);
	memset(&host, 0, sizeof(host));
	host.sin_family = LKL_AF_INET;
	host.sin_addr.s_addr = inet_addr(argv[3]);
	host.sin_port = htons(atoi(argv[4]));
	r = lkl_sys_sendto(fd, "config ping", 11, 0, (struct lkl_sockaddr *)&host, sizeof(host));
	printf("sendto %ld\n", r);
	p.fd = fd;
	p.events = LKL_POLLIN;
	p.revents = 0;
	printf("poll %ld\n", lkl_sys_ppoll(&p, 1, &ts, NULL, 8));
	memset(buf, 0, sizeof(buf));
	r = lkl_sys_recv(fd, buf, sizeof(buf) - 1, LKL_MSG_DONTWAIT);
	printf("recv %ld '%s'\n", r, buf);
	printf("halt %ld\n", lkl_sys_halt());
	return 0;
}

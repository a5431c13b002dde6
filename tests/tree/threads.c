/* Thread ids in the tree's kernel. A thread's first kernel call makes its
 * kernel task, which takes the host thread's id: F_SETOWN_EX naming the
 * calling thread (F_OWNER_TID, gettid()) on a kernel socket works, and
 * F_GETOWN_EX gives that id back (the kernel looks the id up among its own
 * tasks: without equal ids it would be ESRCH, or another task). What Linux
 * shows of a thread's process stays the process's: a netlink socket bound
 * by a thread with nl_pid 0 gets the process's pid as its port id.
 * Prints one line per check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void owner(const char *who)
{
	struct f_owner_ex set = { .type = F_OWNER_TID, .pid = gettid() }, got = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0 || fcntl(s, F_SETOWN_EX, &set)) {
		printf("%s-owner:%s\n", who, strerror(errno));
		return;
	}
	if (fcntl(s, F_GETOWN_EX, &got) || got.type != F_OWNER_TID || got.pid != set.pid)
		printf("%s-owner:got %d for %d\n", who, got.pid, set.pid);
	else
		printf("%s-owner:tid\n", who);
	close(s);
}

static void netlink(const char *who)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(a);
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (s < 0 || bind(s, (void *)&a, sizeof(a)) || getsockname(s, (void *)&a, &len)) {
		printf("%s-netlink:%s\n", who, strerror(errno));
		return;
	}
	if ((pid_t)a.nl_pid == getpid())
		printf("%s-netlink:pid\n", who);
	else
		printf("%s-netlink:%u (pid %d, tid %d)\n", who, a.nl_pid, getpid(), gettid());
	close(s);
}

static void *thread(void *arg)
{
	owner("thread");
	netlink("thread");
	return arg;
}

int main(void)
{
	pthread_t t;

	setvbuf(stdout, NULL, _IONBF, 0);
	owner("main");
	if (pthread_create(&t, NULL, thread, NULL) || pthread_join(t, NULL))
		return 2;
	return 0;
}

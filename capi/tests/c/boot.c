/* Boots the kernel, makes system calls through lkl_sys_*, loads a JSON
 * config, halts: LKL's boot test pattern (tests/boot.c) against lkl.h. */
#include <stdio.h>
#include <string.h>
#include <lkl.h>
#include <lkl_host.h>

static int failures;

#define CHECK(what, cond)                                                  \
	do {                                                               \
		if (cond) {                                                \
			printf("ok %s\n", what);                           \
		} else {                                                   \
			printf("FAIL %s (%s)\n", what, lkl_last_error());  \
			failures++;                                        \
		}                                                          \
	} while (0)

static char console[4096];
static unsigned int console_len;

static void keep_console(const char *str, int len)
{
	if (console_len + len < sizeof(console)) {
		memcpy(console + console_len, str, len);
		console_len += len;
	}
}

int main(void)
{
	struct lkl_config cfg;
	struct lkl_stat st;
	struct lkl_new_utsname uts;
	char buf[256];
	long fd, r;

	CHECK("syscall before boot is -ENODEV", lkl_sys_getpid() == -LKL_ENODEV);
	lkl_host_ops.print = keep_console;
	r = lkl_start_kernel(&lkl_host_ops, "mem=%dM loglevel=%d", 48, 6);
	CHECK("lkl_start_kernel", r == 0);
	if (r < 0) {
		printf("start: %s\n", lkl_strerror(r));
		return 1;
	}
	CHECK("lkl_is_running", lkl_is_running() == 1);
	CHECK("second boot is -EBUSY", lkl_start_kernel(&lkl_host_ops, "mem=32M") == -LKL_EBUSY);
	CHECK("console reached print", strstr(console, "Linux version") != NULL);

	CHECK("getpid", lkl_sys_getpid() == 1);
	CHECK("uname", lkl_sys_uname(&uts) == 0 && strcmp(uts.sysname, "Linux") == 0);
	CHECK("mkdir", lkl_sys_mkdir("/work", 0755) == 0);
	fd = lkl_sys_open("/work/a", LKL_O_CREAT | LKL_O_RDWR | LKL_O_CLOEXEC, 0640);
	CHECK("open", fd >= 0);
	CHECK("write", lkl_sys_write(fd, "hello, kernel", 13) == 13);
	CHECK("fstat", lkl_sys_fstat(fd, &st) == 0 && st.st_size == 13 &&
		       (st.st_mode & 0777) == 0640 && LKL_S_ISREG(st.st_mode));
	CHECK("lseek", lkl_sys_lseek(fd, 7, LKL_SEEK_SET) == 7);
	memset(buf, 0, sizeof(buf));
	CHECK("read", lkl_sys_read(fd, buf, sizeof(buf)) == 6 && strcmp(buf, "kernel") == 0);
	CHECK("close", lkl_sys_close(fd) == 0);
	CHECK("rename", lkl_sys_rename("/work/a", "/work/b") == 0);
	CHECK("stat renamed", lkl_sys_stat("/work/b", &st) == 0 && st.st_size == 13);
	r = lkl_sys_stat("/work/a", &st);
	CHECK("stat old name is -ENOENT", r == -LKL_ENOENT);
	CHECK("strerror", strcmp(lkl_strerror(r), "No such file or directory") == 0);
	fd = lkl_sys_open("/work", LKL_O_RDONLY | LKL_O_DIRECTORY, 0);
	r = lkl_sys_getdents64(fd, (struct lkl_linux_dirent64 *)buf, sizeof(buf));
	{
		int found = 0;
		long off = 0;

		while (off < r) {
			struct lkl_linux_dirent64 *d = (struct lkl_linux_dirent64 *)(buf + off);

			if (strcmp(d->d_name, "b") == 0)
				found = 1;
			off += d->d_reclen;
		}
		CHECK("getdents64", found);
	}
	lkl_sys_close(fd);
	CHECK("unlink", lkl_sys_unlink("/work/b") == 0);
	CHECK("rmdir", lkl_sys_rmdir("/work") == 0);

	{
		int sv[2];
		char c = 0;

		CHECK("socketpair", lkl_sys_socketpair(LKL_AF_UNIX, LKL_SOCK_STREAM, 0, sv) == 0);
		CHECK("send", lkl_sys_send(sv[0], "x", 1, 0) == 1);
		CHECK("recv", lkl_sys_recv(sv[1], &c, 1, 0) == 1 && c == 'x');
	}

	/* The JSON config: a bad key is refused, a good one applied. */
	memset(&cfg, 0, sizeof(cfg));
	CHECK("config: unknown key refused",
	      lkl_load_config_json(&cfg, "{\"gatway\": \"10.0.0.1\"}") == -LKL_EINVAL);
	CHECK("config: load", lkl_load_config_json(&cfg, "{\"sysctl\": \"net.ipv4.ip_forward=1\", "
						     "\"boot_cmdline\": \"quiet\"}") == 0);
	CHECK("config: boot_cmdline", strcmp(cfg.boot_cmdline, "quiet") == 0);
	CHECK("config: pre", lkl_load_config_pre(&cfg) == 0);
	CHECK("config: post", lkl_load_config_post(&cfg) == 0);
	fd = lkl_sys_open("/proc/sys/net/ipv4/ip_forward", LKL_O_RDONLY, 0);
	memset(buf, 0, sizeof(buf));
	CHECK("config: sysctl applied", fd >= 0 && lkl_sys_read(fd, buf, 8) > 0 && buf[0] == '1');
	CHECK("config: unload", lkl_unload_config(&cfg) == 0 && cfg.state == NULL);

	CHECK("halt", lkl_sys_halt() == 0);
	CHECK("syscall after halt fails", lkl_sys_getpid() < 0);
	printf("%s\n", failures ? "FAILED" : "ALL OK");
	return failures != 0;
}

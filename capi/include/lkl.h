/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lkl.h: Linux as a library, the C API (liblkl.so / liblkl.a).
 *
 * The names, argument orders and structures are LKL's (tools/lkl/include/
 * lkl.h), so programs written for LKL compile against this header; where
 * ours behaves differently docs/c-api.md says how and why. Build with
 * `pkg-config --cflags --libs lkl`.
 *
 * The kernel's own types and constants come renamed into the lkl_ / LKL_
 * namespace from the kernel's UAPI headers (struct lkl_stat,
 * struct lkl_sockaddr_in, LKL_O_CREAT, LKL_AF_INET, ...), and every
 * system call of the generic 64-bit table is a static inline
 * lkl_sys_NAME(...) over lkl_syscall() (<lkl/asm/syscalls.h>, generated
 * from the kernel build). Calls return a result >= 0 or a negative
 * LKL_E* errno; lkl_strerror() words it.
 */
#ifndef _LKL_H
#define _LKL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <lkl/asm/syscalls.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Booting and halting ------------------------------------------ */

/* The host operations (lkl_host.h): pass &lkl_host_ops. */
struct lkl_host_operations;

/* The library's boot (the kernel object's own lkl_start_kernel is not
 * exported under that name; lkl_start_kernel below formats the line and
 * calls this). */
int lkl_capi_start_kernel(struct lkl_host_operations *ops, const char *cmd_line);

/**
 * lkl_start_kernel - boot the kernel in this process
 *
 * @ops - &lkl_host_ops (the library's own; only its print may be changed)
 * @fmt - the kernel command line, printf-style: "mem=64M loglevel=8"
 * @returns 0 once the kernel runs and the calling thread may make system
 * calls, or a negative LKL_E* errno (-LKL_EBUSY: it already booted in this
 * process; it boots once per process).
 */
static inline int lkl_start_kernel(struct lkl_host_operations *ops, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline int lkl_start_kernel(struct lkl_host_operations *ops, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (unsigned int)n >= sizeof(line))
		return -LKL_EINVAL;
	return lkl_capi_start_kernel(ops, line);
}

/**
 * lkl_sys_halt - unmount what the library mounted, sync, stop the kernel
 * and flush the disk images
 * @returns 0 or a negative LKL_E* errno
 */
long lkl_capi_sys_halt(void);
#define lkl_sys_halt lkl_capi_sys_halt

/* lkl_is_running - 1 while the kernel runs, else 0 */
int lkl_capi_is_running(void);
#define lkl_is_running lkl_capi_is_running

/* ---- System calls the 64-bit table has only in their *at form ------ */

#define lkl_sys_fstatat lkl_sys_newfstatat
#define lkl_sys_newstat lkl_sys_stat
#define lkl_sys_newlstat lkl_sys_lstat

static inline long lkl_sys_stat(const char *path, struct lkl_stat *buf)
{
	return lkl_sys_newfstatat(LKL_AT_FDCWD, path, buf, 0);
}

static inline long lkl_sys_lstat(const char *path, struct lkl_stat *buf)
{
	return lkl_sys_newfstatat(LKL_AT_FDCWD, path, buf, LKL_AT_SYMLINK_NOFOLLOW);
}

static inline long lkl_sys_open(const char *path, int flags, int mode)
{
	return lkl_sys_openat(LKL_AT_FDCWD, path, flags, mode);
}

static inline long lkl_sys_creat(const char *path, int mode)
{
	return lkl_sys_openat(LKL_AT_FDCWD, path,
			      LKL_O_CREAT | LKL_O_WRONLY | LKL_O_TRUNC, mode);
}

static inline long lkl_sys_access(const char *path, int mode)
{
	return lkl_sys_faccessat(LKL_AT_FDCWD, path, mode);
}

static inline long lkl_sys_chmod(const char *path, int mode)
{
	return lkl_sys_fchmodat(LKL_AT_FDCWD, path, mode);
}

static inline long lkl_sys_chown(const char *path, unsigned int uid, unsigned int gid)
{
	return lkl_sys_fchownat(LKL_AT_FDCWD, path, uid, gid, 0);
}

static inline long lkl_sys_lchown(const char *path, unsigned int uid, unsigned int gid)
{
	return lkl_sys_fchownat(LKL_AT_FDCWD, path, uid, gid, LKL_AT_SYMLINK_NOFOLLOW);
}

static inline long lkl_sys_mkdir(const char *path, int mode)
{
	return lkl_sys_mkdirat(LKL_AT_FDCWD, path, mode);
}

static inline long lkl_sys_rmdir(const char *path)
{
	return lkl_sys_unlinkat(LKL_AT_FDCWD, path, LKL_AT_REMOVEDIR);
}

static inline long lkl_sys_unlink(const char *path)
{
	return lkl_sys_unlinkat(LKL_AT_FDCWD, path, 0);
}

static inline long lkl_sys_link(const char *existing, const char *new_path)
{
	return lkl_sys_linkat(LKL_AT_FDCWD, existing, LKL_AT_FDCWD, new_path, 0);
}

static inline long lkl_sys_symlink(const char *target, const char *path)
{
	return lkl_sys_symlinkat(target, LKL_AT_FDCWD, path);
}

static inline long lkl_sys_readlink(const char *path, char *buf, int size)
{
	return lkl_sys_readlinkat(LKL_AT_FDCWD, path, buf, size);
}

static inline long lkl_sys_rename(const char *old_path, const char *new_path)
{
	return lkl_sys_renameat(LKL_AT_FDCWD, old_path, LKL_AT_FDCWD, new_path);
}

static inline long lkl_sys_mknod(const char *path, int mode, unsigned int dev)
{
	return lkl_sys_mknodat(LKL_AT_FDCWD, path, mode, dev);
}

static inline long lkl_sys_pipe(int fd[2])
{
	return lkl_sys_pipe2(fd, 0);
}

static inline long lkl_sys_dup2(unsigned int old_fd, unsigned int new_fd)
{
	if (old_fd == new_fd) {
		long r = lkl_sys_fcntl(old_fd, LKL_F_GETFD, 0);

		return r < 0 ? r : (long)new_fd;
	}
	return lkl_sys_dup3(old_fd, new_fd, 0);
}

static inline long lkl_sys_send(int fd, const void *buf, __lkl__kernel_size_t len, int flags)
{
	return lkl_sys_sendto(fd, (void *)buf, len, flags, 0, 0);
}

static inline long lkl_sys_recv(int fd, void *buf, __lkl__kernel_size_t len, int flags)
{
	return lkl_sys_recvfrom(fd, buf, len, flags, 0, 0);
}

static inline long lkl_sys_poll(struct lkl_pollfd *fds, int n, int timeout_ms)
{
	struct __lkl__kernel_timespec ts;

	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
	return lkl_sys_ppoll(fds, n, timeout_ms >= 0 ? &ts : 0, 0, 8);
}

static inline long lkl_sys_epoll_create(int size)
{
	(void)size;
	return lkl_sys_epoll_create1(0);
}

static inline long lkl_sys_epoll_wait(int fd, struct lkl_epoll_event *ev, int cnt, int timeout_ms)
{
	return lkl_sys_epoll_pwait(fd, ev, cnt, timeout_ms, 0, 8);
}

/* ---- Errors -------------------------------------------------------- */

/* lkl_strerror - the text of an LKL_E* errno (either sign) */
const char *lkl_strerror(int err);

/* lkl_perror - print "msg: <text of err>" to stderr */
void lkl_perror(const char *msg, int err);

/* lkl_last_error - (ours) why this thread's last failing library call
 * (disk, netdev, interface, config) failed, in one line; "" if none. */
const char *lkl_last_error(void);

/* ---- Disks ---------------------------------------------------------- */

/* Block-device host operations: not supported (leave lkl_disk.ops NULL). */
struct lkl_dev_blk_ops;

/**
 * lkl_disk - a host disk
 *
 * @dev - set by lkl_disk_add (the disk's handle)
 * @fd - an open descriptor of the image file or block device (opened
 * O_RDONLY: the disk is read-only)
 * @ops - must be NULL
 */
struct lkl_disk {
	void *dev;
	union {
		int fd;
		void *handle;
	};
	struct lkl_dev_blk_ops *ops;
};

/* lkl_disk_add - add a disk (before or after boot); its id (0 is valid)
 * or a negative LKL_E* errno */
int lkl_disk_add(struct lkl_disk *disk);

/* lkl_disk_remove - unmount what was mounted from the disk and flush it;
 * the kernel keeps the device until halt */
int lkl_disk_remove(struct lkl_disk disk);

/* lkl_get_virtio_blkdev - the device number of disk @disk_id (partition
 * @part, 0 for the whole disk) at *@pdevid; 0 or a negative errno */
int lkl_get_virtio_blkdev(int disk_id, unsigned int part, uint32_t *pdevid);

/**
 * lkl_mount_dev - mount a disk at /mnt/<device number in hex>
 *
 * @disk_id - from lkl_disk_add
 * @part - partition, or 0 for the whole disk
 * @fs_type - "ext4", "vfat", ...
 * @flags - LKL_MS_RDONLY, LKL_MS_NOATIME, ... (the per-mount ones)
 * @opts - file-system options ("errors=remount-ro"), or NULL
 * @mnt_str - receives the mount point
 * @mnt_str_len - its size
 * @returns 0 or a negative LKL_E* errno
 */
long lkl_mount_dev(unsigned int disk_id, unsigned int part, const char *fs_type,
		   int flags, const char *opts, char *mnt_str, unsigned int mnt_str_len);

/* lkl_umount_dev - unmount what lkl_mount_dev mounted (retrying while busy
 * for up to @timeout_ms; @flags must be 0) and remove the mount point */
long lkl_umount_dev(unsigned int disk_id, unsigned int part, int flags, long timeout_ms);

/* ---- Network devices and interfaces --------------------------------- */

/* A host network backend (opaque). */
struct lkl_netdev;

/**
 * lkl_netdev_args - arguments to lkl_netdev_add
 * @mac - NULL or 6 bytes: the device's MAC address
 * @offload - virtio-net feature bits (LKL's offload values)
 */
struct lkl_netdev_args {
	void *mac;
	unsigned int offload;
};

/* Backends; each returns NULL (and says why on stderr) if it cannot open. */
struct lkl_netdev *lkl_netdev_tap_create(const char *ifname, int offload);
struct lkl_netdev *lkl_netdev_raw_create(const char *ifname);
struct lkl_netdev *lkl_netdev_macvtap_create(const char *path, int offload);
struct lkl_netdev *lkl_netdev_pipe_create(const char *ifname, int offload);
struct lkl_netdev *lkl_netdev_vde_create(const char *switch_path);

/* lkl_netdev_add - give @nd to the kernel (before boot, or hot-added after);
 * the device id (0 is valid) or a negative LKL_E* errno */
int lkl_netdev_add(struct lkl_netdev *nd, struct lkl_netdev_args *args);

/* lkl_netdev_free - free a netdev handle */
void lkl_netdev_free(struct lkl_netdev *nd);

/* lkl_netdev_get_ifindex - the ifindex of device @id, or a negative errno */
int lkl_netdev_get_ifindex(int id);

/* lkl_ifname_to_ifindex - the ifindex of interface @name */
int lkl_ifname_to_ifindex(const char *name);

int lkl_if_up(int ifindex);
int lkl_if_down(int ifindex);
int lkl_if_set_mtu(int ifindex, int mtu);

/* @addr: network byte order (struct in_addr's s_addr) */
int lkl_if_set_ipv4(int ifindex, unsigned int addr, unsigned int netmask_len);
int lkl_set_ipv4_gateway(unsigned int addr);

/* @addr: 16 bytes (struct in6_addr); usable at once (no DAD wait) */
int lkl_if_set_ipv6(int ifindex, void *addr, unsigned int netprefix_len);
int lkl_set_ipv6_gateway(void *addr);

/* ---- The JSON config (the hijack's keys) ---------------------------- */

/**
 * lkl_config - a loaded config; zero it before the first load
 * @state - the library's (opaque)
 * @boot_cmdline - the config's boot_cmdline ("" if none): pass it to
 * lkl_start_kernel
 */
struct lkl_config {
	void *state;
	const char *boot_cmdline;
};

/* Parse and check a JSON config; 0, or -LKL_EINVAL with the errors on stderr. */
int lkl_load_config_json(struct lkl_config *cfg, const char *jstr);
/* The hijack's sources: LKL_HIJACK_* variables, then the config file. */
int lkl_load_config_env(struct lkl_config *cfg);
/* Before lkl_start_kernel: network devices and disks. */
int lkl_load_config_pre(struct lkl_config *cfg);
/* After lkl_start_kernel: mounts, links, addresses, routes, sysctls, DNS. */
int lkl_load_config_post(struct lkl_config *cfg);
/* Free the config (devices and mounts stay until halt). */
int lkl_unload_config(struct lkl_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* _LKL_H */

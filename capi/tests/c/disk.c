/* An ext4 image as a disk: lkl_disk_add, lkl_mount_dev, files through
 * lkl_sys_*, lkl_umount_dev, halt (LKL's disk test pattern). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lkl.h>
#include <lkl_host.h>

int main(int argc, char **argv)
{
	struct lkl_disk disk;
	char mnt[64], path[128], buf[64];
	uint32_t devid = 0;
	long r, fd;
	int id;

	if (argc != 2) {
		fprintf(stderr, "usage: disk IMAGE\n");
		return 2;
	}
	memset(&disk, 0, sizeof(disk));
	disk.fd = open(argv[1], O_RDWR);
	if (disk.fd < 0) {
		perror(argv[1]);
		return 1;
	}
	id = lkl_disk_add(&disk);
	if (id < 0) {
		printf("disk_add: %s (%s)\n", lkl_strerror(id), lkl_last_error());
		return 1;
	}
	close(disk.fd);
	lkl_host_ops.print = NULL;
	r = lkl_start_kernel(&lkl_host_ops, "mem=64M");
	if (r < 0) {
		printf("start: %s\n", lkl_strerror(r));
		return 1;
	}
	r = lkl_get_virtio_blkdev(id, 0, &devid);
	printf("blkdev %ld major %u\n", r, devid >> 8);
	r = lkl_mount_dev(id, 0, "ext4", 0, "errors=remount-ro", mnt, 4);
	printf("mount with a short buffer: %s\n", r == -LKL_ERANGE ? "refused" : "WRONG");
	r = lkl_mount_dev(id, 0, "ext4", 0, "errors=remount-ro", mnt, sizeof(mnt));
	if (r < 0) {
		printf("mount: %s (%s)\n", lkl_strerror(r), lkl_last_error());
		return 1;
	}
	printf("mounted at %s\n", mnt);
	snprintf(path, sizeof(path), "%s/from-c.txt", mnt);
	fd = lkl_sys_open(path, LKL_O_CREAT | LKL_O_WRONLY | LKL_O_TRUNC, 0644);
	r = lkl_sys_write(fd, "written through liblkl\n", 23);
	printf("write %ld\n", r);
	lkl_sys_fsync(fd);
	lkl_sys_close(fd);
	snprintf(path, sizeof(path), "%s/dir", mnt);
	printf("mkdir %ld\n", lkl_sys_mkdir(path, 0755));
	snprintf(path, sizeof(path), "%s/host.txt", mnt);
	fd = lkl_sys_open(path, LKL_O_RDONLY, 0);
	memset(buf, 0, sizeof(buf));
	r = fd < 0 ? fd : lkl_sys_read(fd, buf, sizeof(buf) - 1);
	printf("read host file: %ld '%s'\n", r, buf);
	if (fd >= 0)
		lkl_sys_close(fd);
	r = lkl_umount_dev(id, 0, 0, 1000);
	printf("umount %ld\n", r);
	r = lkl_mount_dev(id, 0, "ext4", LKL_MS_RDONLY, NULL, mnt, sizeof(mnt));
	snprintf(path, sizeof(path), "%s/refused", mnt);
	printf("read-only mount %ld, create there: %s\n", r,
	       lkl_sys_mkdir(path, 0755) == -LKL_EROFS ? "EROFS" : "WRONG");
	r = lkl_sys_halt();
	printf("halt %ld\n", r);
	return r != 0;
}

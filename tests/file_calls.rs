//! The file-call wrappers (src/syscall/file.rs) against a booted kernel,
//! on its ramfs root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use lkl::syscall::{self as sys, abi, abi::Timespec};
use lkl::Errno;
use testkit::{boot, in_child, read_kernel_file as read_file};

const LIMIT: Duration = Duration::from_secs(120);

fn write_file(path: &str, data: &[u8]) {
    let fd = sys::open(path, abi::O_CREAT | abi::O_WRONLY | abi::O_TRUNC, 0o644).unwrap();
    assert_eq!(sys::write(fd, data).unwrap(), data.len());
    sys::close(fd).unwrap();
}

#[test]
fn file_calls_on_ramfs() {
    in_child("file_calls_on_ramfs", LIMIT, || {
        let (kernel, _console) = boot(64 << 20);
        sys::mkdir("/t", 0o755).unwrap();
        let dir = sys::open("/t", abi::O_PATH | abi::O_DIRECTORY, 0).unwrap();

        // mkdirat / mknodat / unlinkat relative to an O_PATH directory.
        sys::mkdirat(dir, "sub", 0o700).unwrap();
        assert_eq!(sys::stat("/t/sub").unwrap().st_mode & 0o7777, 0o700);
        sys::mknodat(dir, "fifo", abi::S_IFIFO | 0o600, 0).unwrap();
        assert_eq!(
            sys::stat("/t/fifo").unwrap().st_mode & abi::S_IFMT,
            abi::S_IFIFO
        );
        sys::unlinkat(dir, "fifo", 0).unwrap();
        assert_eq!(sys::stat("/t/fifo").unwrap_err(), Errno::ENOENT);

        // Rename, with and without replacing; exchange.
        write_file("/t/a", b"alpha");
        write_file("/t/b", b"beta");
        assert_eq!(
            sys::renameat2(dir, "a", dir, "b", abi::RENAME_NOREPLACE),
            Err(Errno::EEXIST)
        );
        sys::renameat2(dir, "a", dir, "b", abi::RENAME_EXCHANGE).unwrap();
        assert_eq!(read_file("/t/b"), b"alpha");
        assert_eq!(read_file("/t/a"), b"beta");
        sys::rename("/t/a", "/t/c").unwrap();
        assert_eq!(read_file("/t/c"), b"beta");

        // Hard links share the inode.
        sys::link("/t/c", "/t/c2").unwrap();
        let (s1, s2) = (sys::stat("/t/c").unwrap(), sys::stat("/t/c2").unwrap());
        assert_eq!(s1.st_ino, s2.st_ino);
        assert_eq!(s1.st_nlink, 2);
        sys::linkat(dir, "c", dir, "c3", 0).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_nlink, 3);

        // Symlinks, readlink, a name that is not UTF-8.
        sys::symlink("c", "/t/l").unwrap();
        assert_eq!(sys::readlink("/t/l").unwrap(), Path::new("c"));
        let odd = OsStr::from_bytes(b"/t/odd-\xff\xfe");
        sys::symlinkat(OsStr::from_bytes(b"target-\x80"), abi::AT_FDCWD, odd).unwrap();
        assert_eq!(
            sys::readlink(odd).unwrap().as_os_str().as_bytes(),
            b"target-\x80"
        );
        let long = "x".repeat(1000);
        sys::symlinkat(&long, dir, "long").unwrap();
        assert_eq!(sys::readlinkat(dir, "long").unwrap(), Path::new(&long));
        assert_eq!(sys::readlink("/t/c").unwrap_err(), Errno::EINVAL);
        // A path with a NUL in it is refused before the kernel sees it.
        assert_eq!(sys::readlink("/t/\0x").unwrap_err(), Errno::EINVAL);

        // Modes: by path, by descriptor, by O_PATH with AT_EMPTY_PATH (fchmodat2).
        sys::chmod("/t/c", 0o600).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_mode & 0o7777, 0o600);
        let fd = sys::open("/t/c", abi::O_RDWR, 0).unwrap();
        sys::fchmod(fd, 0o640).unwrap();
        assert_eq!(sys::fstat(fd).unwrap().st_mode & 0o7777, 0o640);
        let pfd = sys::open("/t/c", abi::O_PATH, 0).unwrap();
        sys::fchmodat(pfd, "", 0o604, abi::AT_EMPTY_PATH).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_mode & 0o7777, 0o604);
        sys::fchmodat(dir, "c", 0o644, 0).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_mode & 0o7777, 0o644);

        // Owners: change one, leave the other; a symlink itself.
        sys::chown("/t/c", Some(1000), Some(100)).unwrap();
        sys::fchown(fd, None, Some(200)).unwrap();
        let st = sys::stat("/t/c").unwrap();
        assert_eq!((st.st_uid, st.st_gid), (1000, 200));
        sys::lchown("/t/l", Some(7), Some(8)).unwrap();
        let st = sys::fstatat(abi::AT_FDCWD, "/t/l", abi::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (7, 8));
        assert_eq!(sys::stat("/t/c").unwrap().st_uid, 1000);
        sys::fchownat(pfd, "", Some(0), Some(0), abi::AT_EMPTY_PATH).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_uid, 0);

        // Times: set both, omit one, now.
        let t = [
            Timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 5,
            },
            Timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 7,
            },
        ];
        sys::utimensat(abi::AT_FDCWD, "/t/c", Some(t), 0).unwrap();
        let st = sys::stat("/t/c").unwrap();
        assert_eq!((st.st_atime, st.st_atime_nsec), (1_000_000_000, 5));
        assert_eq!((st.st_mtime, st.st_mtime_nsec), (1_500_000_000, 7));
        let t2 = [
            Timespec {
                tv_sec: 42,
                tv_nsec: 0,
            },
            Timespec::OMIT,
        ];
        sys::futimens(fd, Some(t2)).unwrap();
        let st = sys::stat("/t/c").unwrap();
        assert_eq!((st.st_atime, st.st_mtime), (42, 1_500_000_000));
        // An O_PATH descriptor needs AT_EMPTY_PATH (futimens gives EBADF).
        assert_eq!(sys::futimens(pfd, None), Err(Errno::EBADF));
        sys::utimensat(
            pfd,
            "",
            Some([Timespec::OMIT, Timespec::NOW]),
            abi::AT_EMPTY_PATH,
        )
        .unwrap();
        assert!(sys::stat("/t/c").unwrap().st_mtime > 1_600_000_000);
        sys::utimensat(dir, "l", Some([t[0], t[0]]), abi::AT_SYMLINK_NOFOLLOW).unwrap();
        let st = sys::fstatat(dir, "l", abi::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(st.st_mtime, 1_000_000_000);

        // Sizes and space.
        sys::truncate("/t/c", 10_000).unwrap();
        assert_eq!(sys::stat("/t/c").unwrap().st_size, 10_000);
        sys::ftruncate(fd, 2).unwrap();
        assert_eq!(read_file("/t/c"), b"be");
        match sys::fallocate(fd, 0, 0, 1 << 20) {
            // ramfs has no fallocate; a disk file system does (tests/lklfuse.rs).
            Err(Errno::EOPNOTSUPP) => {}
            Ok(()) => assert_eq!(sys::fstat(fd).unwrap().st_size, 1 << 20),
            Err(e) => panic!("fallocate: {e}"),
        }
        sys::fdatasync(fd).unwrap();
        sys::syncfs(fd).unwrap();

        // File-system statistics: ramfs's magic number.
        let sf = sys::statfs("/t").unwrap();
        assert_eq!(sf.f_type, 0x8584_58f6, "{sf:?}");
        assert!(sf.f_bsize > 0);
        assert_eq!(sys::fstatfs(pfd).unwrap().f_type, sf.f_type);

        // Access checks (root passes R/W; X needs an x bit somewhere).
        sys::access("/t/c", abi::R_OK | abi::W_OK).unwrap();
        assert_eq!(sys::access("/t/c", abi::X_OK), Err(Errno::EACCES));
        sys::access("/t/sub", abi::X_OK).unwrap();
        assert_eq!(sys::access("/t/nope", abi::F_OK), Err(Errno::ENOENT));
        sys::faccessat(dir, "c", abi::R_OK, abi::AT_EACCESS).unwrap();
        sys::faccessat(pfd, "", abi::F_OK, abi::AT_EMPTY_PATH).unwrap();

        // statx agrees with stat.
        let sx = sys::statx(dir, "c", 0, abi::STATX_BASIC_STATS).unwrap();
        let st = sys::stat("/t/c").unwrap();
        assert_eq!(sx.stx_ino, st.st_ino);
        assert_eq!(sx.stx_size as i64, st.st_size);
        assert_eq!(sx.stx_mode as u32, st.st_mode);
        assert_eq!(sx.stx_nlink, st.st_nlink);
        assert_eq!(sx.stx_mtime.tv_sec, st.st_mtime);
        assert_eq!(sx.stx_mask & abi::STATX_BASIC_STATS, abi::STATX_BASIC_STATS);

        // Extended attributes: ramfs has no handlers (user.* needs a disk
        // file system: tests/lklfuse.rs covers them on ext4); the calls
        // reach the kernel and report that.
        let e = sys::setxattr("/t/c", "user.k", b"v", 0).unwrap_err();
        assert_eq!(e, Errno::EOPNOTSUPP);
        // user.* is refused on a symlink itself before the file system is asked.
        assert_eq!(
            sys::lsetxattr("/t/l", "user.k", b"v", abi::XATTR_CREATE).unwrap_err(),
            Errno::EPERM
        );
        assert!(sys::getxattr("/t/c", "user.k").is_err());
        assert!(sys::lgetxattr("/t/l", "user.k").is_err());
        assert!(sys::listxattr("/t/c").unwrap_or_default().is_empty());
        assert!(sys::llistxattr("/t/l").unwrap_or_default().is_empty());
        assert!(sys::removexattr("/t/c", "user.k").is_err());
        assert_eq!(
            sys::getxattr("/t/nope", "user.k").unwrap_err(),
            Errno::ENOENT
        );

        sys::close(fd).unwrap();
        sys::close(pfd).unwrap();
        sys::close(dir).unwrap();
        kernel.halt().unwrap();
    });
}

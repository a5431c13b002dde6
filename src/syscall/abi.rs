//! Structures and constants of the kernel's generic 64-bit ABI
//! (include/uapi/asm-generic), which differ from x86_64's in places:
//! `struct stat` has another layout and `epoll_event` is not packed.

#![allow(missing_docs)]

/// `struct stat` (asm-generic/stat.h), 128 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_mode: u32,
    pub st_nlink: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub st_rdev: u64,
    pub __pad1: u64,
    pub st_size: i64,
    pub st_blksize: i32,
    pub __pad2: i32,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: u64,
    pub st_mtime: i64,
    pub st_mtime_nsec: u64,
    pub st_ctime: i64,
    pub st_ctime_nsec: u64,
    pub __unused4: u32,
    pub __unused5: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl Timespec {
    /// For `utimensat`: set this time to now.
    pub const NOW: Timespec = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    /// For `utimensat`: leave this time unchanged.
    pub const OMIT: Timespec = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_OMIT,
    };
}

/// `struct statfs` (asm-generic/statfs.h with 64-bit words), 120 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct StatFs {
    pub f_type: i64,
    pub f_bsize: i64,
    pub f_blocks: u64,
    pub f_bfree: u64,
    pub f_bavail: u64,
    pub f_files: u64,
    pub f_ffree: u64,
    pub f_fsid: [i32; 2],
    pub f_namelen: i64,
    pub f_frsize: i64,
    pub f_flags: i64,
    pub f_spare: [i64; 4],
}

/// `struct statx_timestamp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatxTimestamp {
    pub tv_sec: i64,
    pub tv_nsec: u32,
    pub __reserved: i32,
}

/// `struct statx` (uapi/linux/stat.h as of 6.12), 256 bytes, the same on
/// every architecture.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Statx {
    pub stx_mask: u32,
    pub stx_blksize: u32,
    pub stx_attributes: u64,
    pub stx_nlink: u32,
    pub stx_uid: u32,
    pub stx_gid: u32,
    pub stx_mode: u16,
    pub __spare0: u16,
    pub stx_ino: u64,
    pub stx_size: u64,
    pub stx_blocks: u64,
    pub stx_attributes_mask: u64,
    pub stx_atime: StatxTimestamp,
    pub stx_btime: StatxTimestamp,
    pub stx_ctime: StatxTimestamp,
    pub stx_mtime: StatxTimestamp,
    pub stx_rdev_major: u32,
    pub stx_rdev_minor: u32,
    pub stx_dev_major: u32,
    pub stx_dev_minor: u32,
    pub stx_mnt_id: u64,
    pub stx_dio_mem_align: u32,
    pub stx_dio_offset_align: u32,
    pub stx_subvol: u64,
    pub stx_atomic_write_unit_min: u32,
    pub stx_atomic_write_unit_max: u32,
    pub stx_atomic_write_segments_max: u32,
    pub __spare1: u32,
    pub __spare3: [u64; 9],
}

/// `struct epoll_event`: packed to 12 bytes, as on x86_64, because the
/// kernel is compiled by the host's x86_64 compiler and uapi
/// linux/eventpoll.h packs it whenever `__x86_64__` is defined
/// (tests/xlate_kernel.rs checks this against the running kernel).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}

/// `struct new_utsname`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UtsName {
    pub sysname: [u8; 65],
    pub nodename: [u8; 65],
    pub release: [u8; 65],
    pub version: [u8; 65],
    pub machine: [u8; 65],
    pub domainname: [u8; 65],
}

impl Default for UtsName {
    fn default() -> Self {
        UtsName {
            sysname: [0; 65],
            nodename: [0; 65],
            release: [0; 65],
            version: [0; 65],
            machine: [0; 65],
            domainname: [0; 65],
        }
    }
}

/// A NUL-terminated field of a fixed-size array as text.
pub fn cstr_field(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).unwrap_or("")
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SockAddrIn {
    pub sin_family: u16,
    /// Network byte order.
    pub sin_port: u16,
    /// Network byte order.
    pub sin_addr: u32,
    pub sin_zero: [u8; 8],
}

impl SockAddrIn {
    pub fn new(addr: std::net::Ipv4Addr, port: u16) -> Self {
        SockAddrIn {
            sin_family: AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: u32::from(addr).to_be(),
            sin_zero: [0; 8],
        }
    }

    pub fn port(&self) -> u16 {
        u16::from_be(self.sin_port)
    }
}

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct IfreqFlags {
    pub ifr_name: [u8; 16],
    pub ifr_flags: i16,
    pub __pad: [u8; 22],
}

/// Header of a `struct linux_dirent64` record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Dirent64Header {
    pub d_ino: u64,
    pub d_off: i64,
    pub d_reclen: u16,
    pub d_type: u8,
}

pub const O_RDONLY: i32 = 0;
pub const O_WRONLY: i32 = 0o1;
pub const O_RDWR: i32 = 0o2;
pub const O_CREAT: i32 = 0o100;
pub const O_EXCL: i32 = 0o200;
pub const O_NOCTTY: i32 = 0o400;
pub const O_TRUNC: i32 = 0o1000;
pub const O_APPEND: i32 = 0o2000;
pub const O_NONBLOCK: i32 = 0o4000;
pub const O_DIRECTORY: i32 = 0o200000;
pub const O_NOFOLLOW: i32 = 0o400000;
pub const O_CLOEXEC: i32 = 0o2000000;

pub const AT_FDCWD: i32 = -100;
pub const AT_REMOVEDIR: i32 = 0x200;
pub const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
pub const AT_SYMLINK_FOLLOW: i32 = 0x400;
pub const AT_NO_AUTOMOUNT: i32 = 0x800;
pub const AT_EMPTY_PATH: i32 = 0x1000;
pub const AT_EACCESS: i32 = 0x200;
pub const AT_STATX_SYNC_AS_STAT: i32 = 0;

pub const O_PATH: i32 = 0o10000000;
pub const O_NOATIME: i32 = 0o1000000;
pub const O_DIRECT: i32 = 0o40000;
pub const O_LARGEFILE: i32 = 0o100000;
pub const O_SYNC: i32 = 0o4010000;
pub const O_DSYNC: i32 = 0o10000;
pub const O_TMPFILE: i32 = 0o20000000 | O_DIRECTORY;

/// `renameat2` flags.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;
pub const RENAME_WHITEOUT: u32 = 4;

/// `utimensat` special nanosecond values.
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `faccessat` modes.
pub const F_OK: i32 = 0;
pub const X_OK: i32 = 1;
pub const W_OK: i32 = 2;
pub const R_OK: i32 = 4;

/// `fallocate` modes.
pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// `setxattr` flags.
pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

/// `statx` mask bits.
pub const STATX_TYPE: u32 = 0x001;
pub const STATX_MODE: u32 = 0x002;
pub const STATX_NLINK: u32 = 0x004;
pub const STATX_UID: u32 = 0x008;
pub const STATX_GID: u32 = 0x010;
pub const STATX_ATIME: u32 = 0x020;
pub const STATX_MTIME: u32 = 0x040;
pub const STATX_CTIME: u32 = 0x080;
pub const STATX_INO: u32 = 0x100;
pub const STATX_SIZE: u32 = 0x200;
pub const STATX_BLOCKS: u32 = 0x400;
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFSOCK: u32 = 0o140000;

pub const SEEK_SET: i32 = 0;
pub const SEEK_CUR: i32 = 1;
pub const SEEK_END: i32 = 2;

pub const F_GETFL: i32 = 3;
pub const F_SETFL: i32 = 4;

pub const EPOLL_CLOEXEC: i32 = O_CLOEXEC;
pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;
pub const EPOLL_CTL_MOD: i32 = 3;
pub const EPOLLIN: u32 = 0x001;
pub const EPOLLPRI: u32 = 0x002;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
pub const EPOLLET: u32 = 1 << 31;
pub const EPOLLONESHOT: u32 = 1 << 30;

pub const POLLIN: i16 = 0x001;
pub const POLLOUT: i16 = 0x004;

pub const EFD_NONBLOCK: i32 = O_NONBLOCK;
pub const EFD_CLOEXEC: i32 = O_CLOEXEC;

pub const MS_RDONLY: u64 = 1;
pub const MNT_DETACH: i32 = 2;

pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 10;
pub const AF_NETLINK: i32 = 16;
pub const AF_PACKET: i32 = 17;
pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_RAW: i32 = 3;
pub const SOCK_NONBLOCK: i32 = O_NONBLOCK;
pub const SOCK_CLOEXEC: i32 = O_CLOEXEC;
pub const SOL_SOCKET: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_BROADCAST: i32 = 6;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const TCP_NODELAY: i32 = 1;
pub const SHUT_WR: i32 = 1;
pub const SHUT_RDWR: i32 = 2;

pub const SIOCGIFFLAGS: u64 = 0x8913;
pub const SIOCSIFFLAGS: u64 = 0x8914;
pub const SIOCSIFADDR: u64 = 0x8916;
pub const SIOCSIFNETMASK: u64 = 0x891c;
pub const IFF_UP: i16 = 0x1;
pub const IFF_LOOPBACK: i16 = 0x8;
pub const IFF_RUNNING: i16 = 0x40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_layouts() {
        assert_eq!(std::mem::size_of::<Stat>(), 128);
        assert_eq!(std::mem::size_of::<EpollEvent>(), 12);
        assert_eq!(std::mem::size_of::<UtsName>(), 390);
        assert_eq!(std::mem::size_of::<SockAddrIn>(), 16);
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
        assert_eq!(std::mem::offset_of!(Stat, st_size), 48);
        assert_eq!(std::mem::offset_of!(Stat, st_blocks), 64);
        assert_eq!(std::mem::size_of::<StatFs>(), 120);
        assert_eq!(std::mem::offset_of!(StatFs, f_fsid), 56);
        assert_eq!(std::mem::offset_of!(StatFs, f_namelen), 64);
        assert_eq!(std::mem::size_of::<Statx>(), 256);
        assert_eq!(std::mem::offset_of!(Statx, stx_mtime), 112);
        assert_eq!(std::mem::offset_of!(Statx, stx_mnt_id), 144);
        assert_eq!(std::mem::offset_of!(Statx, __spare3), 184);
    }
}

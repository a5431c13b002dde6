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

/// `struct epoll_event`: 16 bytes in the generic ABI (12, packed, on x86_64).
#[repr(C)]
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

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

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
        assert_eq!(std::mem::size_of::<EpollEvent>(), 16);
        assert_eq!(std::mem::size_of::<UtsName>(), 390);
        assert_eq!(std::mem::size_of::<SockAddrIn>(), 16);
        assert_eq!(std::mem::size_of::<IfreqFlags>(), 40);
        assert_eq!(std::mem::offset_of!(Stat, st_size), 48);
        assert_eq!(std::mem::offset_of!(Stat, st_blocks), 64);
    }
}

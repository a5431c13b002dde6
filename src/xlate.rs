//! Translation between the host's x86_64 ABI (what a hijacked program
//! passes) and the kernel's generic 64-bit ABI (what lkl's kernel takes),
//! table-driven. Each table row names a constant, its value in the kernel's
//! generic uapi headers (written here as a literal; the header is named on
//! the table) and its value on the host (from the `libc` crate, i.e. the
//! x86_64 kernel ABI glibc uses). Unit tests check every row against both:
//! the literal against the built kernel's headers, the host column against
//! `libc`.
//!
//! Most tables are identities on x86_64 (it uses asm-generic's errno,
//! socket, sockios, ioctls, fcntl and poll headers): for those, the
//! `*_IDENTITY` constants are computed at compile time from the tables and
//! the translation functions compile to nothing, so hook paths pay nothing.
//! What really differs is translated: `struct stat` (asm-generic's 128-byte
//! layout vs x86_64's 144-byte one). `struct epoll_event` is 12 bytes and
//! packed on both sides: the kernel is compiled by the host's x86_64
//! compiler, so `__x86_64__` is defined and linux/eventpoll.h packs it
//! (checked against the running kernel in tests/xlate_kernel.rs). Signal
//! sets are 8 bytes in both kernels' syscalls (64 signals; glibc's 128-byte
//! `sigset_t` is a user-space size, of which the kernel reads the first 8).
//! x86_64-specific: this module is only meaningful on an x86_64 host.

use crate::syscall::abi;

/// One constant: (name, kernel generic value, host x86_64 value).
pub type Row = (&'static str, i64, i64);

const fn identity(rows: &[Row]) -> bool {
    let mut i = 0;
    while i < rows.len() {
        if rows[i].1 != rows[i].2 {
            return false;
        }
        i += 1;
    }
    true
}

/// A value from one side to the other through `rows` (unknown values pass
/// unchanged).
fn lookup(rows: &[Row], v: i64, to_host: bool) -> i64 {
    for r in rows {
        let (from, to) = if to_host { (r.1, r.2) } else { (r.2, r.1) };
        if from == v {
            return to;
        }
    }
    v
}

/// Bit flags from one side to the other through `rows` (each row one flag
/// or a multi-bit value; unknown bits pass unchanged).
fn flags(rows: &[Row], v: i64, to_host: bool) -> i64 {
    let mut out = 0;
    let mut left = v;
    for r in rows {
        let (from, to) = if to_host { (r.1, r.2) } else { (r.2, r.1) };
        if from != 0 && left & from == from {
            out |= to;
            left &= !from;
        }
    }
    out | left
}

/// errno values. Kernel: asm-generic/errno-base.h, asm-generic/errno.h.
pub const ERRNO: &[Row] = &[
    ("EPERM", 1, libc::EPERM as i64),
    ("ENOENT", 2, libc::ENOENT as i64),
    ("ESRCH", 3, libc::ESRCH as i64),
    ("EINTR", 4, libc::EINTR as i64),
    ("EIO", 5, libc::EIO as i64),
    ("ENXIO", 6, libc::ENXIO as i64),
    ("E2BIG", 7, libc::E2BIG as i64),
    ("ENOEXEC", 8, libc::ENOEXEC as i64),
    ("EBADF", 9, libc::EBADF as i64),
    ("ECHILD", 10, libc::ECHILD as i64),
    ("EAGAIN", 11, libc::EAGAIN as i64),
    ("ENOMEM", 12, libc::ENOMEM as i64),
    ("EACCES", 13, libc::EACCES as i64),
    ("EFAULT", 14, libc::EFAULT as i64),
    ("ENOTBLK", 15, libc::ENOTBLK as i64),
    ("EBUSY", 16, libc::EBUSY as i64),
    ("EEXIST", 17, libc::EEXIST as i64),
    ("EXDEV", 18, libc::EXDEV as i64),
    ("ENODEV", 19, libc::ENODEV as i64),
    ("ENOTDIR", 20, libc::ENOTDIR as i64),
    ("EISDIR", 21, libc::EISDIR as i64),
    ("EINVAL", 22, libc::EINVAL as i64),
    ("ENFILE", 23, libc::ENFILE as i64),
    ("EMFILE", 24, libc::EMFILE as i64),
    ("ENOTTY", 25, libc::ENOTTY as i64),
    ("ETXTBSY", 26, libc::ETXTBSY as i64),
    ("EFBIG", 27, libc::EFBIG as i64),
    ("ENOSPC", 28, libc::ENOSPC as i64),
    ("ESPIPE", 29, libc::ESPIPE as i64),
    ("EROFS", 30, libc::EROFS as i64),
    ("EMLINK", 31, libc::EMLINK as i64),
    ("EPIPE", 32, libc::EPIPE as i64),
    ("EDOM", 33, libc::EDOM as i64),
    ("ERANGE", 34, libc::ERANGE as i64),
    ("EDEADLK", 35, libc::EDEADLK as i64),
    ("ENAMETOOLONG", 36, libc::ENAMETOOLONG as i64),
    ("ENOLCK", 37, libc::ENOLCK as i64),
    ("ENOSYS", 38, libc::ENOSYS as i64),
    ("ENOTEMPTY", 39, libc::ENOTEMPTY as i64),
    ("ELOOP", 40, libc::ELOOP as i64),
    ("ENOMSG", 42, libc::ENOMSG as i64),
    ("EIDRM", 43, libc::EIDRM as i64),
    ("ECHRNG", 44, libc::ECHRNG as i64),
    ("EL2NSYNC", 45, libc::EL2NSYNC as i64),
    ("EL3HLT", 46, libc::EL3HLT as i64),
    ("EL3RST", 47, libc::EL3RST as i64),
    ("ELNRNG", 48, libc::ELNRNG as i64),
    ("EUNATCH", 49, libc::EUNATCH as i64),
    ("ENOCSI", 50, libc::ENOCSI as i64),
    ("EL2HLT", 51, libc::EL2HLT as i64),
    ("EBADE", 52, libc::EBADE as i64),
    ("EBADR", 53, libc::EBADR as i64),
    ("EXFULL", 54, libc::EXFULL as i64),
    ("ENOANO", 55, libc::ENOANO as i64),
    ("EBADRQC", 56, libc::EBADRQC as i64),
    ("EBADSLT", 57, libc::EBADSLT as i64),
    ("EBFONT", 59, libc::EBFONT as i64),
    ("ENOSTR", 60, libc::ENOSTR as i64),
    ("ENODATA", 61, libc::ENODATA as i64),
    ("ETIME", 62, libc::ETIME as i64),
    ("ENOSR", 63, libc::ENOSR as i64),
    ("ENONET", 64, libc::ENONET as i64),
    ("ENOPKG", 65, libc::ENOPKG as i64),
    ("EREMOTE", 66, libc::EREMOTE as i64),
    ("ENOLINK", 67, libc::ENOLINK as i64),
    ("EADV", 68, libc::EADV as i64),
    ("ESRMNT", 69, libc::ESRMNT as i64),
    ("ECOMM", 70, libc::ECOMM as i64),
    ("EPROTO", 71, libc::EPROTO as i64),
    ("EMULTIHOP", 72, libc::EMULTIHOP as i64),
    ("EDOTDOT", 73, libc::EDOTDOT as i64),
    ("EBADMSG", 74, libc::EBADMSG as i64),
    ("EOVERFLOW", 75, libc::EOVERFLOW as i64),
    ("ENOTUNIQ", 76, libc::ENOTUNIQ as i64),
    ("EBADFD", 77, libc::EBADFD as i64),
    ("EREMCHG", 78, libc::EREMCHG as i64),
    ("ELIBACC", 79, libc::ELIBACC as i64),
    ("ELIBBAD", 80, libc::ELIBBAD as i64),
    ("ELIBSCN", 81, libc::ELIBSCN as i64),
    ("ELIBMAX", 82, libc::ELIBMAX as i64),
    ("ELIBEXEC", 83, libc::ELIBEXEC as i64),
    ("EILSEQ", 84, libc::EILSEQ as i64),
    ("ERESTART", 85, libc::ERESTART as i64),
    ("ESTRPIPE", 86, libc::ESTRPIPE as i64),
    ("EUSERS", 87, libc::EUSERS as i64),
    ("ENOTSOCK", 88, libc::ENOTSOCK as i64),
    ("EDESTADDRREQ", 89, libc::EDESTADDRREQ as i64),
    ("EMSGSIZE", 90, libc::EMSGSIZE as i64),
    ("EPROTOTYPE", 91, libc::EPROTOTYPE as i64),
    ("ENOPROTOOPT", 92, libc::ENOPROTOOPT as i64),
    ("EPROTONOSUPPORT", 93, libc::EPROTONOSUPPORT as i64),
    ("ESOCKTNOSUPPORT", 94, libc::ESOCKTNOSUPPORT as i64),
    ("EOPNOTSUPP", 95, libc::EOPNOTSUPP as i64),
    ("EPFNOSUPPORT", 96, libc::EPFNOSUPPORT as i64),
    ("EAFNOSUPPORT", 97, libc::EAFNOSUPPORT as i64),
    ("EADDRINUSE", 98, libc::EADDRINUSE as i64),
    ("EADDRNOTAVAIL", 99, libc::EADDRNOTAVAIL as i64),
    ("ENETDOWN", 100, libc::ENETDOWN as i64),
    ("ENETUNREACH", 101, libc::ENETUNREACH as i64),
    ("ENETRESET", 102, libc::ENETRESET as i64),
    ("ECONNABORTED", 103, libc::ECONNABORTED as i64),
    ("ECONNRESET", 104, libc::ECONNRESET as i64),
    ("ENOBUFS", 105, libc::ENOBUFS as i64),
    ("EISCONN", 106, libc::EISCONN as i64),
    ("ENOTCONN", 107, libc::ENOTCONN as i64),
    ("ESHUTDOWN", 108, libc::ESHUTDOWN as i64),
    ("ETOOMANYREFS", 109, libc::ETOOMANYREFS as i64),
    ("ETIMEDOUT", 110, libc::ETIMEDOUT as i64),
    ("ECONNREFUSED", 111, libc::ECONNREFUSED as i64),
    ("EHOSTDOWN", 112, libc::EHOSTDOWN as i64),
    ("EHOSTUNREACH", 113, libc::EHOSTUNREACH as i64),
    ("EALREADY", 114, libc::EALREADY as i64),
    ("EINPROGRESS", 115, libc::EINPROGRESS as i64),
    ("ESTALE", 116, libc::ESTALE as i64),
    ("EUCLEAN", 117, libc::EUCLEAN as i64),
    ("ENOTNAM", 118, libc::ENOTNAM as i64),
    ("ENAVAIL", 119, libc::ENAVAIL as i64),
    ("EISNAM", 120, libc::EISNAM as i64),
    ("EREMOTEIO", 121, libc::EREMOTEIO as i64),
    ("EDQUOT", 122, libc::EDQUOT as i64),
    ("ENOMEDIUM", 123, libc::ENOMEDIUM as i64),
    ("EMEDIUMTYPE", 124, libc::EMEDIUMTYPE as i64),
    ("ECANCELED", 125, libc::ECANCELED as i64),
    ("ENOKEY", 126, libc::ENOKEY as i64),
    ("EKEYEXPIRED", 127, libc::EKEYEXPIRED as i64),
    ("EKEYREVOKED", 128, libc::EKEYREVOKED as i64),
    ("EKEYREJECTED", 129, libc::EKEYREJECTED as i64),
    ("EOWNERDEAD", 130, libc::EOWNERDEAD as i64),
    ("ENOTRECOVERABLE", 131, libc::ENOTRECOVERABLE as i64),
    ("ERFKILL", 132, libc::ERFKILL as i64),
    ("EHWPOISON", 133, libc::EHWPOISON as i64),
];
pub const ERRNO_IDENTITY: bool = identity(ERRNO);

/// A kernel errno as the host's.
#[inline]
pub fn errno_to_host(e: i32) -> i32 {
    if ERRNO_IDENTITY {
        e
    } else {
        lookup(ERRNO, e.into(), true) as i32
    }
}

/// Socket levels and SOL_SOCKET options. Kernel: asm-generic/socket.h.
pub const SOCKOPT: &[Row] = &[
    ("SOL_SOCKET", 1, libc::SOL_SOCKET as i64),
    ("SO_DEBUG", 1, libc::SO_DEBUG as i64),
    ("SO_REUSEADDR", 2, libc::SO_REUSEADDR as i64),
    ("SO_TYPE", 3, libc::SO_TYPE as i64),
    ("SO_ERROR", 4, libc::SO_ERROR as i64),
    ("SO_DONTROUTE", 5, libc::SO_DONTROUTE as i64),
    ("SO_BROADCAST", 6, libc::SO_BROADCAST as i64),
    ("SO_SNDBUF", 7, libc::SO_SNDBUF as i64),
    ("SO_RCVBUF", 8, libc::SO_RCVBUF as i64),
    ("SO_KEEPALIVE", 9, libc::SO_KEEPALIVE as i64),
    ("SO_OOBINLINE", 10, libc::SO_OOBINLINE as i64),
    ("SO_NO_CHECK", 11, libc::SO_NO_CHECK as i64),
    ("SO_PRIORITY", 12, libc::SO_PRIORITY as i64),
    ("SO_LINGER", 13, libc::SO_LINGER as i64),
    ("SO_BSDCOMPAT", 14, libc::SO_BSDCOMPAT as i64),
    ("SO_REUSEPORT", 15, libc::SO_REUSEPORT as i64),
    ("SO_PASSCRED", 16, libc::SO_PASSCRED as i64),
    ("SO_PEERCRED", 17, libc::SO_PEERCRED as i64),
    ("SO_RCVLOWAT", 18, libc::SO_RCVLOWAT as i64),
    ("SO_SNDLOWAT", 19, libc::SO_SNDLOWAT as i64),
    ("SO_RCVTIMEO_OLD", 20, libc::SO_RCVTIMEO as i64),
    ("SO_SNDTIMEO_OLD", 21, libc::SO_SNDTIMEO as i64),
    ("SO_BINDTODEVICE", 25, libc::SO_BINDTODEVICE as i64),
    ("SO_ATTACH_FILTER", 26, libc::SO_ATTACH_FILTER as i64),
    ("SO_DETACH_FILTER", 27, libc::SO_DETACH_FILTER as i64),
    ("SO_PEERNAME", 28, libc::SO_PEERNAME as i64),
    ("SO_TIMESTAMP_OLD", 29, libc::SO_TIMESTAMP as i64),
    ("SO_ACCEPTCONN", 30, libc::SO_ACCEPTCONN as i64),
    ("SO_PEERSEC", 31, libc::SO_PEERSEC as i64),
    ("SO_SNDBUFFORCE", 32, libc::SO_SNDBUFFORCE as i64),
    ("SO_RCVBUFFORCE", 33, libc::SO_RCVBUFFORCE as i64),
    ("SO_PASSSEC", 34, libc::SO_PASSSEC as i64),
    ("SO_TIMESTAMPNS_OLD", 35, libc::SO_TIMESTAMPNS as i64),
    ("SO_MARK", 36, libc::SO_MARK as i64),
    ("SO_TIMESTAMPING_OLD", 37, libc::SO_TIMESTAMPING as i64),
    ("SO_PROTOCOL", 38, libc::SO_PROTOCOL as i64),
    ("SO_DOMAIN", 39, libc::SO_DOMAIN as i64),
    ("SO_RXQ_OVFL", 40, libc::SO_RXQ_OVFL as i64),
    ("SO_PEEK_OFF", 42, libc::SO_PEEK_OFF as i64),
    ("SO_BUSY_POLL", 46, libc::SO_BUSY_POLL as i64),
    ("SO_INCOMING_CPU", 49, libc::SO_INCOMING_CPU as i64),
    ("SO_ZEROCOPY", 60, libc::SO_ZEROCOPY as i64),
    ("SO_TXTIME", 61, libc::SO_TXTIME as i64),
];
pub const SOCKOPT_IDENTITY: bool = identity(SOCKOPT);

/// A host (level, option) as the kernel's. Only SOL_SOCKET's options are
/// ABI-specific; other levels' options are protocol numbers.
#[inline]
pub fn sockopt_to_kernel(level: i32, name: i32) -> (i32, i32) {
    if SOCKOPT_IDENTITY {
        return (level, name);
    }
    let klevel = lookup(&SOCKOPT[..1], level.into(), false) as i32;
    if level == libc::SOL_SOCKET {
        (klevel, lookup(&SOCKOPT[1..], name.into(), false) as i32)
    } else {
        (klevel, name)
    }
}

/// Socket ioctls. Kernel: asm-generic/ioctls.h, asm-generic/sockios.h,
/// linux/sockios.h.
pub const IOCTL: &[Row] = &[
    ("FIONREAD", 0x541B, libc::FIONREAD as i64),
    ("FIONBIO", 0x5421, libc::FIONBIO as i64),
    ("FIONCLEX", 0x5450, libc::FIONCLEX as i64),
    ("FIOCLEX", 0x5451, libc::FIOCLEX as i64),
    ("FIOASYNC", 0x5452, libc::FIOASYNC as i64),
    ("TIOCOUTQ", 0x5411, libc::TIOCOUTQ as i64),
    ("FIOSETOWN", 0x8901, 0x8901),
    ("SIOCSPGRP", 0x8902, 0x8902),
    ("FIOGETOWN", 0x8903, 0x8903),
    ("SIOCGPGRP", 0x8904, 0x8904),
    ("SIOCATMARK", 0x8905, 0x8905),
    ("SIOCADDRT", 0x890B, libc::SIOCADDRT as i64),
    ("SIOCDELRT", 0x890C, libc::SIOCDELRT as i64),
    ("SIOCGIFNAME", 0x8910, libc::SIOCGIFNAME as i64),
    ("SIOCGIFCONF", 0x8912, libc::SIOCGIFCONF as i64),
    ("SIOCGIFFLAGS", 0x8913, libc::SIOCGIFFLAGS as i64),
    ("SIOCSIFFLAGS", 0x8914, libc::SIOCSIFFLAGS as i64),
    ("SIOCGIFADDR", 0x8915, libc::SIOCGIFADDR as i64),
    ("SIOCSIFADDR", 0x8916, libc::SIOCSIFADDR as i64),
    ("SIOCGIFDSTADDR", 0x8917, libc::SIOCGIFDSTADDR as i64),
    ("SIOCGIFBRDADDR", 0x8919, libc::SIOCGIFBRDADDR as i64),
    ("SIOCGIFNETMASK", 0x891b, libc::SIOCGIFNETMASK as i64),
    ("SIOCSIFNETMASK", 0x891c, libc::SIOCSIFNETMASK as i64),
    ("SIOCGIFMETRIC", 0x891d, libc::SIOCGIFMETRIC as i64),
    ("SIOCGIFMTU", 0x8921, libc::SIOCGIFMTU as i64),
    ("SIOCSIFMTU", 0x8922, libc::SIOCSIFMTU as i64),
    ("SIOCSIFNAME", 0x8923, libc::SIOCSIFNAME as i64),
    ("SIOCSIFHWADDR", 0x8924, libc::SIOCSIFHWADDR as i64),
    ("SIOCGIFHWADDR", 0x8927, libc::SIOCGIFHWADDR as i64),
    ("SIOCADDMULTI", 0x8931, libc::SIOCADDMULTI as i64),
    ("SIOCDELMULTI", 0x8932, libc::SIOCDELMULTI as i64),
    ("SIOCGIFINDEX", 0x8933, libc::SIOCGIFINDEX as i64),
    ("SIOCGIFCOUNT", 0x8938, libc::SIOCGIFCOUNT as i64),
    ("SIOCGIFTXQLEN", 0x8942, libc::SIOCGIFTXQLEN as i64),
    ("SIOCSIFTXQLEN", 0x8943, libc::SIOCSIFTXQLEN as i64),
    ("SIOCETHTOOL", 0x8946, libc::SIOCETHTOOL as i64),
    ("SIOCGMIIPHY", 0x8947, libc::SIOCGMIIPHY as i64),
    ("SIOCOUTQNSD", 0x894B, libc::SIOCOUTQNSD as i64),
    ("SIOCDARP", 0x8953, libc::SIOCDARP as i64),
    ("SIOCGARP", 0x8954, libc::SIOCGARP as i64),
    ("SIOCSARP", 0x8955, libc::SIOCSARP as i64),
];
pub const IOCTL_IDENTITY: bool = identity(IOCTL);

/// A host ioctl request as the kernel's.
#[inline]
pub fn ioctl_to_kernel(request: u64) -> u64 {
    if IOCTL_IDENTITY {
        request
    } else {
        lookup(IOCTL, request as i64, false) as u64
    }
}

/// fcntl commands. Kernel: asm-generic/fcntl.h (64-bit: no F_*LK64),
/// linux/fcntl.h (F_LINUX_SPECIFIC_BASE 1024).
pub const FCNTL: &[Row] = &[
    ("F_DUPFD", 0, libc::F_DUPFD as i64),
    ("F_GETFD", 1, libc::F_GETFD as i64),
    ("F_SETFD", 2, libc::F_SETFD as i64),
    ("F_GETFL", 3, libc::F_GETFL as i64),
    ("F_SETFL", 4, libc::F_SETFL as i64),
    ("F_GETLK", 5, libc::F_GETLK as i64),
    ("F_SETLK", 6, libc::F_SETLK as i64),
    ("F_SETLKW", 7, libc::F_SETLKW as i64),
    ("F_SETOWN", 8, libc::F_SETOWN as i64),
    ("F_GETOWN", 9, libc::F_GETOWN as i64),
    ("F_SETSIG", 10, 10),
    ("F_GETSIG", 11, 11),
    ("F_SETOWN_EX", 15, 15),
    ("F_GETOWN_EX", 16, 16),
    ("F_OFD_GETLK", 36, libc::F_OFD_GETLK as i64),
    ("F_OFD_SETLK", 37, libc::F_OFD_SETLK as i64),
    ("F_OFD_SETLKW", 38, libc::F_OFD_SETLKW as i64),
    ("F_SETLEASE", 1024, libc::F_SETLEASE as i64),
    ("F_GETLEASE", 1025, libc::F_GETLEASE as i64),
    ("F_NOTIFY", 1026, libc::F_NOTIFY as i64),
    ("F_DUPFD_CLOEXEC", 1030, libc::F_DUPFD_CLOEXEC as i64),
    ("F_SETPIPE_SZ", 1031, libc::F_SETPIPE_SZ as i64),
    ("F_GETPIPE_SZ", 1032, libc::F_GETPIPE_SZ as i64),
    ("F_ADD_SEALS", 1033, libc::F_ADD_SEALS as i64),
    ("F_GET_SEALS", 1034, libc::F_GET_SEALS as i64),
];
pub const FCNTL_IDENTITY: bool = identity(FCNTL);

/// A host fcntl command as the kernel's.
#[inline]
pub fn fcntl_to_kernel(cmd: i32) -> i32 {
    if FCNTL_IDENTITY {
        cmd
    } else {
        lookup(FCNTL, cmd.into(), false) as i32
    }
}

/// O_* open/status flags. Kernel: asm-generic/fcntl.h. Host: the x86_64
/// kernel's values; O_LARGEFILE is written out because glibc (and so the
/// `libc` crate) defines it as 0 on 64-bit while both kernels report
/// 0o100000 in F_GETFL.
pub const OFLAGS: &[Row] = &[
    ("O_WRONLY", 0o1, libc::O_WRONLY as i64),
    ("O_RDWR", 0o2, libc::O_RDWR as i64),
    ("O_CREAT", 0o100, libc::O_CREAT as i64),
    ("O_EXCL", 0o200, libc::O_EXCL as i64),
    ("O_NOCTTY", 0o400, libc::O_NOCTTY as i64),
    ("O_TRUNC", 0o1000, libc::O_TRUNC as i64),
    ("O_APPEND", 0o2000, libc::O_APPEND as i64),
    ("O_NONBLOCK", 0o4000, libc::O_NONBLOCK as i64),
    ("O_DSYNC", 0o10000, libc::O_DSYNC as i64),
    ("FASYNC", 0o20000, libc::O_ASYNC as i64),
    ("O_DIRECT", 0o40000, libc::O_DIRECT as i64),
    ("O_LARGEFILE", 0o100000, 0o100000),
    ("O_DIRECTORY", 0o200000, libc::O_DIRECTORY as i64),
    ("O_NOFOLLOW", 0o400000, libc::O_NOFOLLOW as i64),
    ("O_NOATIME", 0o1000000, libc::O_NOATIME as i64),
    ("O_CLOEXEC", 0o2000000, libc::O_CLOEXEC as i64),
    (
        "__O_SYNC",
        0o4000000,
        (libc::O_SYNC & !libc::O_DSYNC) as i64,
    ),
    ("O_PATH", 0o10000000, libc::O_PATH as i64),
    (
        "__O_TMPFILE",
        0o20000000,
        (libc::O_TMPFILE & !libc::O_DIRECTORY) as i64,
    ),
];
pub const OFLAGS_IDENTITY: bool = identity(OFLAGS);

/// Host O_* flags as the kernel's.
#[inline]
pub fn oflags_to_kernel(f: i32) -> i32 {
    if OFLAGS_IDENTITY {
        f
    } else {
        flags(OFLAGS, f.into(), false) as i32
    }
}

/// Kernel O_* flags (F_GETFL) as the host's.
#[inline]
pub fn oflags_to_host(f: i32) -> i32 {
    if OFLAGS_IDENTITY {
        f
    } else {
        flags(OFLAGS, f.into(), true) as i32
    }
}

/// socket()/socketpair()/accept4() type flags. Kernel: linux/net.h
/// (SOCK_CLOEXEC = O_CLOEXEC, SOCK_NONBLOCK = O_NONBLOCK of asm-generic).
pub const SOCKFLAGS: &[Row] = &[
    ("SOCK_NONBLOCK", 0o4000, libc::SOCK_NONBLOCK as i64),
    ("SOCK_CLOEXEC", 0o2000000, libc::SOCK_CLOEXEC as i64),
];
pub const SOCKFLAGS_IDENTITY: bool = identity(SOCKFLAGS);

/// A host socket type (with its flags) as the kernel's.
#[inline]
pub fn socktype_to_kernel(ty: i32) -> i32 {
    if SOCKFLAGS_IDENTITY {
        ty
    } else {
        flags(SOCKFLAGS, ty.into(), false) as i32
    }
}

/// poll/epoll event bits. Kernel: asm-generic/poll.h, linux/eventpoll.h.
pub const EVENTS: &[Row] = &[
    ("POLLIN", 0x1, libc::POLLIN as i64),
    ("POLLPRI", 0x2, libc::POLLPRI as i64),
    ("POLLOUT", 0x4, libc::POLLOUT as i64),
    ("POLLERR", 0x8, libc::POLLERR as i64),
    ("POLLHUP", 0x10, libc::POLLHUP as i64),
    ("POLLNVAL", 0x20, libc::POLLNVAL as i64),
    ("POLLRDNORM", 0x40, libc::POLLRDNORM as i64),
    ("POLLRDBAND", 0x80, libc::POLLRDBAND as i64),
    ("POLLWRNORM", 0x100, libc::POLLWRNORM as i64),
    ("POLLWRBAND", 0x200, libc::POLLWRBAND as i64),
    ("POLLRDHUP", 0x2000, libc::POLLRDHUP as i64),
    ("EPOLLEXCLUSIVE", 1 << 28, libc::EPOLLEXCLUSIVE as i64),
    ("EPOLLWAKEUP", 1 << 29, libc::EPOLLWAKEUP as i64),
    ("EPOLLONESHOT", 1 << 30, libc::EPOLLONESHOT as i64),
    ("EPOLLET", 1 << 31, libc::EPOLLET as u32 as i64),
];
pub const EVENTS_IDENTITY: bool = identity(EVENTS);

/// MSG_* flags. Kernel: include/linux/socket.h (not exported to uapi, so
/// not checked against headers).
pub const MSGFLAGS: &[Row] = &[
    ("MSG_OOB", 1, libc::MSG_OOB as i64),
    ("MSG_PEEK", 2, libc::MSG_PEEK as i64),
    ("MSG_DONTROUTE", 4, libc::MSG_DONTROUTE as i64),
    ("MSG_CTRUNC", 8, libc::MSG_CTRUNC as i64),
    ("MSG_TRUNC", 0x20, libc::MSG_TRUNC as i64),
    ("MSG_DONTWAIT", 0x40, libc::MSG_DONTWAIT as i64),
    ("MSG_EOR", 0x80, libc::MSG_EOR as i64),
    ("MSG_WAITALL", 0x100, libc::MSG_WAITALL as i64),
    ("MSG_ERRQUEUE", 0x2000, libc::MSG_ERRQUEUE as i64),
    ("MSG_NOSIGNAL", 0x4000, libc::MSG_NOSIGNAL as i64),
    ("MSG_MORE", 0x8000, libc::MSG_MORE as i64),
    ("MSG_WAITFORONE", 0x10000, libc::MSG_WAITFORONE as i64),
    ("MSG_FASTOPEN", 0x2000_0000, libc::MSG_FASTOPEN as i64),
    (
        "MSG_CMSG_CLOEXEC",
        0x4000_0000,
        libc::MSG_CMSG_CLOEXEC as i64,
    ),
];
pub const MSGFLAGS_IDENTITY: bool = identity(MSGFLAGS);

/// `sizeof(struct epoll_event)`: in the kernel (packed: see the module
/// doc) and on the host.
pub const KERNEL_EPOLL_EVENT_SIZE: usize = 12;
pub const HOST_EPOLL_EVENT_SIZE: usize = std::mem::size_of::<libc::epoll_event>();
/// The signal-set size both kernels' syscalls take (`_NSIG / 8`; kernel:
/// asm-generic/signal.h `_NSIG 64`).
pub const KERNEL_SIGSET_SIZE: usize = 8;
pub const HOST_SIGSET_SIZE: usize = 8;
/// `sizeof(struct stat)` in the kernel (asm-generic/stat.h) and on the host.
pub const KERNEL_STAT_SIZE: usize = 128;
pub const HOST_STAT_SIZE: usize = std::mem::size_of::<libc::stat>();

/// The kernel's `struct stat` (asm-generic layout) as x86_64's.
pub fn stat_to_host(k: &abi::Stat) -> libc::stat {
    // SAFETY: libc::stat is plain old data; all-zero is a valid value.
    let mut h: libc::stat = unsafe { std::mem::zeroed() };
    h.st_dev = k.st_dev;
    h.st_ino = k.st_ino;
    h.st_nlink = u64::from(k.st_nlink);
    h.st_mode = k.st_mode;
    h.st_uid = k.st_uid;
    h.st_gid = k.st_gid;
    h.st_rdev = k.st_rdev;
    h.st_size = k.st_size;
    h.st_blksize = i64::from(k.st_blksize);
    h.st_blocks = k.st_blocks;
    h.st_atime = k.st_atime;
    h.st_atime_nsec = k.st_atime_nsec as i64;
    h.st_mtime = k.st_mtime;
    h.st_mtime_nsec = k.st_mtime_nsec as i64;
    h.st_ctime = k.st_ctime;
    h.st_ctime_nsec = k.st_ctime_nsec as i64;
    h
}

#[cfg(test)]
mod tests;

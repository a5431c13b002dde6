//! The libc edge of the host network backends: tun/tap ioctls, `AF_PACKET`
//! sockets, descriptor inspection, and vectored I/O on character devices.
//!
//! This is the one file under [`backends`](super) that may use `unsafe`.
//! Every function is a thin, safe wrapper over one or two calls: it checks
//! the arguments its callee relies on, turns a `-1` into the `io::Error` of
//! `errno`, and wraps a descriptor the kernel just made into an `OwnedFd` on
//! the line after the call, so it is closed exactly once. Nothing here
//! blocks: sockets are created non-blocking or used with `MSG_DONTWAIT`.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::virtio::hostio::{cvt, cvt_size};

/// `sizeof(T)` as a `socklen_t`, for the small fixed structures passed here.
fn socklen<T>() -> libc::socklen_t {
    // The structures used here are a few dozen bytes: no truncation.
    mem::size_of::<T>() as libc::socklen_t
}

/// An interface name as the kernel's `char[IFNAMSIZ]`: at most 15 bytes,
/// no NUL inside.
fn ifname_bytes(name: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let b = name.as_bytes();
    if b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an interface name has at most 15 bytes and no NUL",
        ));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, &c) in out.iter_mut().zip(b) {
        *o = c as libc::c_char;
    }
    Ok(out)
}

/// The name in an `ifreq` the kernel filled (NUL-terminated within
/// `IFNAMSIZ`; a missing NUL stops at the end of the array).
fn ifname_string(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&c| c as u8)
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn zeroed_ifreq() -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data (a name array and a union of
    // integers, arrays and a raw pointer); all-zero is a valid value of each.
    unsafe { mem::zeroed() }
}

/// `TUNSETIFF`: attaches a `/dev/net/tun` descriptor to the interface
/// `name` (creating it if it does not exist and the caller may), or sets
/// the flags of a macvtap descriptor (which ignores the name). Returns the
/// interface's name as the kernel reports it.
pub(super) fn tun_set_iff(
    fd: BorrowedFd<'_>,
    name: &str,
    flags: libc::c_int,
) -> io::Result<String> {
    let mut ifr = zeroed_ifreq();
    ifr.ifr_name = ifname_bytes(name)?;
    // Every IFF_* flag TUNSETIFF takes is below 0x8000: it fits a c_short.
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, and `ifr` is a
    // live, initialised one; `fd` is open for the call. We check the result.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) })?;
    Ok(ifname_string(&ifr.ifr_name))
}

/// `TUNGETIFF`: the name and `IFF_*` flags of the interface a tun/tap or
/// macvtap descriptor is attached to. Fails with `EBADFD` on an unattached
/// `/dev/net/tun` descriptor and `ENOTTY` (or `EINVAL`) on anything else.
pub(super) fn tun_get_iff(fd: BorrowedFd<'_>) -> io::Result<(String, libc::c_int)> {
    let mut ifr = zeroed_ifreq();
    // SAFETY: TUNGETIFF writes one `struct ifreq` into `ifr`, which is live
    // and exclusively borrowed; `fd` is open for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut ifr) })?;
    // SAFETY: TUNGETIFF filled `ifru_flags`, and every bit pattern of a
    // c_short is valid.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    // The flags are a bit set: keep the 16 bits as they are.
    Ok((
        ifname_string(&ifr.ifr_name),
        libc::c_int::from(flags as u16),
    ))
}

/// `TUNSETVNETHDRSZ`: the size of the virtio-net header in front of every
/// frame on a tap or macvtap descriptor with `IFF_VNET_HDR`.
pub(super) fn tun_set_vnet_hdr_sz(fd: BorrowedFd<'_>, size: libc::c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which
    // points at a live local; `fd` is open for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) })?;
    Ok(())
}

/// `TUNSETVNETLE`: virtio-net headers are little-endian (virtio 1.x). Only
/// needed where the host is big-endian; tap's default is host order.
pub(super) fn tun_set_vnet_le(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: TUNSETVNETLE reads one int through the pointer, which points
    // at a live local; `fd` is open for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETLE, &on) })?;
    Ok(())
}

/// `TUNSETOFFLOAD`: which offloads (`TUN_F_*`) the reader of a tap or
/// macvtap accepts in the frames it reads. The argument is passed by value.
pub(super) fn tun_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long)
    // and touches no memory of ours; `fd` is open for the call.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    })?;
    Ok(())
}

/// The index of the interface `name` in the caller's network namespace;
/// `ENODEV` if there is none.
pub(super) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a live NUL-terminated string for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// A non-blocking, close-on-exec `AF_PACKET` `SOCK_RAW` socket with
/// protocol 0, so it receives nothing until [`packet_bind`] names one: no
/// frame from another interface slips in between the two calls.
pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; we check the result.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a packet socket to interface `ifindex` for EtherType `protocol`
/// (host order; `ETH_P_ALL` for every frame).
pub(super) fn packet_bind(fd: BorrowedFd<'_>, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    // AF_PACKET (17) fits the 16-bit family field.
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed is its size;
    // bind only reads it.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            socklen::<libc::sockaddr_ll>(),
        )
    })?;
    Ok(())
}

/// `PACKET_ADD_MEMBERSHIP` of type `mr_type` (`PACKET_MR_PROMISC`...) on
/// `ifindex`. The kernel drops the membership when the socket closes.
pub(super) fn packet_add_membership(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    mr_type: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `packet_mreq` is plain old data; all-zero is valid (no
    // address: promiscuous membership takes none).
    let mut mr: libc::packet_mreq = unsafe { mem::zeroed() };
    mr.mr_ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // PACKET_MR_* are small positive constants.
    mr.mr_type = mr_type as libc::c_ushort;
    // SAFETY: `mr` is a live packet_mreq and the length passed is its size;
    // setsockopt only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mr as *const libc::packet_mreq).cast::<libc::c_void>(),
            socklen::<libc::packet_mreq>(),
        )
    })?;
    Ok(())
}

/// `setsockopt` of one int.
pub(super) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live local int and the length passed is
    // its size; setsockopt only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast::<libc::c_void>(),
            socklen::<libc::c_int>(),
        )
    })?;
    Ok(())
}

/// `getsockopt` of one int (`SO_TYPE`, `SO_DOMAIN`...).
pub(super) fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = socklen::<libc::c_int>();
    // SAFETY: `value` and `len` are live locals; getsockopt writes at most
    // `len` bytes into `value` and updates `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast::<libc::c_void>(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// True if the socket has a peer (`getpeername` succeeds); false on
/// `ENOTCONN`.
pub(super) fn is_connected(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `sockaddr_storage` is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = socklen::<libc::sockaddr_storage>();
    // SAFETY: `ss` is a live sockaddr_storage of `len` bytes; getpeername
    // writes at most that many and updates `len`.
    let r = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    match cvt(r) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A close-on-exec duplicate of descriptor number `fd`, which we then own;
/// `EBADF` if `fd` is not open. The original is left to its owner.
pub(super) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes an int and touches no memory;
    // on a number that is not an open descriptor it fails with EBADF.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` was just created by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The `S_IFMT` bits of the file behind `fd`.
pub(super) fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    // SAFETY: `stat` is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is a live, exclusively borrowed stat for fstat to fill.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT)
}

/// `readv` on a descriptor whose every read returns one whole frame (a tap).
pub(super) fn readv(fd: BorrowedFd<'_>, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    let n = libc::c_int::try_from(bufs.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
    // SAFETY: `IoSliceMut` is ABI-compatible with `iovec` on Unix; `bufs`
    // is exclusively borrowed for the call and readv writes at most each
    // iovec's length into its buffer.
    cvt_size(unsafe { libc::readv(fd.as_raw_fd(), bufs.as_mut_ptr().cast::<libc::iovec>(), n) })
}

/// `writev` on a descriptor whose every write is one whole frame (a tap).
pub(super) fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let n = libc::c_int::try_from(bufs.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; `bufs` is
    // live for the call and writev only reads the memory it describes.
    cvt_size(unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast::<libc::iovec>(), n) })
}

/// The effective user id.
pub(super) fn geteuid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes a FIFO at `path` with permissions `mode` (before the umask).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a live NUL-terminated path for the call.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn interface_names_are_checked_before_the_kernel_sees_them() {
        assert!(ifname_bytes("eth0").is_ok());
        assert!(ifname_bytes("fifteen-bytes-x").is_ok());
        let e = ifname_bytes("sixteen-bytes-xx").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(ifname_bytes("a\0b").is_err());
        let raw = ifname_bytes("tap7").unwrap();
        assert_eq!(ifname_string(&raw), "tap7");
    }

    #[test]
    fn missing_interfaces_and_descriptors_are_errors() {
        let e = if_nametoindex("lklbk-none0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        let e = dup_cloexec(-1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_socketpair_is_a_connected_socket() {
        let (a, _b) = crate::virtio::hostio::seqpacket_pair().unwrap();
        assert_eq!(file_type(a.as_fd()).unwrap(), libc::S_IFSOCK);
        assert_eq!(
            getsockopt_int(a.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap(),
            libc::SOCK_SEQPACKET
        );
        assert!(is_connected(a.as_fd()).unwrap());
        let d = dup_cloexec(a.as_raw_fd()).unwrap();
        assert_ne!(d.as_raw_fd(), a.as_raw_fd());
    }
}

//! Sockets and interface control.

use super::abi::{self, IfreqFlags, SockAddrIn};
use super::{nr, ptr, ptr_mut, raw, Errno};

pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<i32, Errno> {
    // SAFETY: no pointer arguments.
    unsafe {
        raw(
            nr::SOCKET,
            [domain as i64, ty as i64, protocol as i64, 0, 0, 0],
        )
    }
    .map(|fd| fd as i32)
}

/// `bind` to an IPv4 address ([`super::bind`] takes any family).
pub fn bind_in(fd: i32, addr: &SockAddrIn) -> Result<(), Errno> {
    super::bind(fd, &super::SockAddr::In(*addr))
}

/// `connect` to an IPv4 address ([`super::connect`] takes any family).
pub fn connect_in(fd: i32, addr: &SockAddrIn) -> Result<(), Errno> {
    super::connect(fd, &super::SockAddr::In(*addr))
}

pub fn listen(fd: i32, backlog: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::LISTEN, [fd as i64, backlog as i64, 0, 0, 0, 0]) }.map(drop)
}

pub fn accept(fd: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: null address pointers are allowed.
    unsafe { raw(nr::ACCEPT4, [fd as i64, 0, 0, flags as i64, 0, 0]) }.map(|fd| fd as i32)
}

pub fn getsockname_in(fd: i32) -> Result<SockAddrIn, Errno> {
    let mut addr = SockAddrIn::default();
    let mut len: u32 = 16;
    // SAFETY: a sockaddr_in and its length, both written by the kernel.
    unsafe {
        raw(
            nr::GETSOCKNAME,
            [fd as i64, ptr_mut(&mut addr), ptr_mut(&mut len), 0, 0, 0],
        )
    }?;
    Ok(addr)
}

pub fn send(fd: i32, buf: &[u8], flags: i32) -> Result<usize, Errno> {
    // SAFETY: the kernel reads at most `buf.len()` bytes.
    unsafe {
        raw(
            nr::SENDTO,
            [
                fd as i64,
                ptr(buf.as_ptr()),
                buf.len() as i64,
                flags as i64,
                0,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}

pub fn recv(fd: i32, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes.
    unsafe {
        raw(
            nr::RECVFROM,
            [
                fd as i64,
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                flags as i64,
                0,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}

pub fn sendto_in(fd: i32, buf: &[u8], flags: i32, to: &SockAddrIn) -> Result<usize, Errno> {
    super::sendto(fd, buf, flags, &super::SockAddr::In(*to))
}

/// `setsockopt` with an int value.
pub fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> Result<(), Errno> {
    // SAFETY: an int of the stated size.
    unsafe {
        raw(
            nr::SETSOCKOPT,
            [fd as i64, level as i64, name as i64, ptr(&value), 4, 0],
        )
    }
    .map(drop)
}

/// `getsockopt` for an int value.
pub fn getsockopt_int(fd: i32, level: i32, name: i32) -> Result<i32, Errno> {
    let mut value: i32 = 0;
    let mut len: u32 = 4;
    // SAFETY: an int and its length, written by the kernel.
    unsafe {
        raw(
            nr::GETSOCKOPT,
            [
                fd as i64,
                level as i64,
                name as i64,
                ptr_mut(&mut value),
                ptr_mut(&mut len),
                0,
            ],
        )
    }?;
    Ok(value)
}

pub fn shutdown(fd: i32, how: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::SHUTDOWN, [fd as i64, how as i64, 0, 0, 0, 0]) }.map(drop)
}

fn ifreq(name: &str) -> Result<IfreqFlags, Errno> {
    let mut req = IfreqFlags::default();
    if name.len() >= req.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    req.ifr_name[..name.len()].copy_from_slice(name.as_bytes());
    Ok(req)
}

/// Interface flags (`SIOCGIFFLAGS`).
pub fn if_flags(name: &str) -> Result<i16, Errno> {
    let mut req = ifreq(name)?;
    let fd = socket(abi::AF_INET, abi::SOCK_DGRAM | abi::SOCK_CLOEXEC, 0)?;
    // SAFETY: a struct ifreq the kernel reads and writes.
    let r = unsafe {
        raw(
            nr::IOCTL,
            [
                fd as i64,
                abi::SIOCGIFFLAGS as i64,
                ptr_mut(&mut req),
                0,
                0,
                0,
            ],
        )
    };
    let _ = close_quiet(fd);
    r.map(|_| req.ifr_flags)
}

/// Brings an interface up or down (`SIOCSIFFLAGS`); returns the new flags.
pub fn if_set_up(name: &str, up: bool) -> Result<i16, Errno> {
    let flags = if_flags(name)?;
    let mut req = ifreq(name)?;
    req.ifr_flags = if up {
        flags | abi::IFF_UP
    } else {
        flags & !abi::IFF_UP
    };
    let fd = socket(abi::AF_INET, abi::SOCK_DGRAM | abi::SOCK_CLOEXEC, 0)?;
    // SAFETY: a struct ifreq the kernel reads.
    let r = unsafe {
        raw(
            nr::IOCTL,
            [
                fd as i64,
                abi::SIOCSIFFLAGS as i64,
                ptr_mut(&mut req),
                0,
                0,
                0,
            ],
        )
    };
    let _ = close_quiet(fd);
    r?;
    if_flags(name)
}

fn close_quiet(fd: i32) -> Result<(), Errno> {
    super::close(fd)
}

/// `struct ifreq` with a `sockaddr_in` in its union.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct IfreqAddr {
    ifr_name: [u8; 16],
    ifr_addr: SockAddrIn,
    __pad: [u8; 8],
}

fn ifreq_addr(name: &str, addr: std::net::Ipv4Addr) -> Result<IfreqAddr, Errno> {
    let mut req = IfreqAddr::default();
    if name.len() >= req.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    req.ifr_name[..name.len()].copy_from_slice(name.as_bytes());
    req.ifr_addr = SockAddrIn::new(addr, 0);
    Ok(req)
}

/// Sets an interface's IPv4 address and prefix (`SIOCSIFADDR`,
/// `SIOCSIFNETMASK`).
pub fn if_set_ipv4(name: &str, addr: std::net::Ipv4Addr, prefix: u8) -> Result<(), Errno> {
    if prefix > 32 {
        return Err(Errno::EINVAL);
    }
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    let fd = socket(abi::AF_INET, abi::SOCK_DGRAM | abi::SOCK_CLOEXEC, 0)?;
    let result = (|| {
        let mut req = ifreq_addr(name, addr)?;
        // SAFETY: a struct ifreq the kernel reads.
        unsafe {
            raw(
                nr::IOCTL,
                [
                    fd as i64,
                    abi::SIOCSIFADDR as i64,
                    ptr_mut(&mut req),
                    0,
                    0,
                    0,
                ],
            )
        }?;
        let mut req = ifreq_addr(name, std::net::Ipv4Addr::from(mask))?;
        // SAFETY: as above.
        unsafe {
            raw(
                nr::IOCTL,
                [
                    fd as i64,
                    abi::SIOCSIFNETMASK as i64,
                    ptr_mut(&mut req),
                    0,
                    0,
                    0,
                ],
            )
        }?;
        Ok(())
    })();
    let _ = close_quiet(fd);
    result
}

//! Message sockets: `sendmsg`, `recvmsg`, `sendto`, `recvfrom` with a
//! source address, and `bind`/`connect`/`getsockname` for any address
//! family this crate speaks (IPv4, IPv6, netlink).
//!
//! The structures are the kernel's generic 64-bit ABI ones. For everything
//! here that ABI and x86_64's agree: `struct user_msghdr` is 56 bytes,
//! `struct iovec` 16, `sockaddr_in6` 28, `sockaddr_nl` 12. Addresses are
//! handed to the kernel as bytes we encode ourselves ([`SockAddr`]), and
//! what the kernel writes back is decoded with its length checked, so a
//! short or odd address never becomes a half-read struct.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::abi::{SockAddrIn, AF_INET, AF_INET6, AF_NETLINK};
use super::{nr, ptr, ptr_mut, raw, Errno};

/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: i32 = 1;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: i32 = 58;
/// `NETLINK_ROUTE`: the rtnetlink protocol of an `AF_NETLINK` socket.
pub const NETLINK_ROUTE: i32 = 0;
/// `SOL_NETLINK`: the socket-option level of netlink sockets.
pub const SOL_NETLINK: i32 = 270;
/// `NETLINK_CAP_ACK`: error messages carry only the request's header.
pub const NETLINK_CAP_ACK: i32 = 10;
/// `NETLINK_EXT_ACK`: error messages carry the kernel's explanation.
pub const NETLINK_EXT_ACK: i32 = 11;
/// `NETLINK_GET_STRICT_CHK`: dump requests are checked and filtered strictly.
pub const NETLINK_GET_STRICT_CHK: i32 = 12;

/// `MSG_PEEK`.
pub const MSG_PEEK: i32 = 0x02;
/// `MSG_CTRUNC` (in [`RecvMsg::flags`]): control data was cut.
pub const MSG_CTRUNC: i32 = 0x08;
/// `MSG_TRUNC`: as a flag, return the real length; in [`RecvMsg::flags`],
/// the message did not fit.
pub const MSG_TRUNC: i32 = 0x20;
/// `MSG_DONTWAIT`: do not block.
pub const MSG_DONTWAIT: i32 = 0x40;

/// `struct iovec` of the generic ABI (the same as x86_64's).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct IoVec {
    /// `iov_base`: a host pointer (the kernel shares our address space).
    pub iov_base: usize,
    /// `iov_len`.
    pub iov_len: usize,
}

/// `struct user_msghdr` of the generic ABI (the same as x86_64's).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgHdr {
    /// `msg_name`: the address buffer, or 0.
    pub msg_name: usize,
    /// `msg_namelen`: its length (the kernel writes the real one back).
    pub msg_namelen: i32,
    /// Padding before the next pointer-aligned field.
    pub __pad1: u32,
    /// `msg_iov`: an array of [`IoVec`].
    pub msg_iov: usize,
    /// `msg_iovlen`: the number of entries.
    pub msg_iovlen: usize,
    /// `msg_control`: ancillary data, or 0.
    pub msg_control: usize,
    /// `msg_controllen`.
    pub msg_controllen: usize,
    /// `msg_flags`: `MSG_*` bits the kernel reports on receive.
    pub msg_flags: u32,
    /// Tail padding.
    pub __pad2: u32,
}

/// `struct sockaddr_in6`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockAddrIn6 {
    /// `AF_INET6`.
    pub sin6_family: u16,
    /// Network byte order.
    pub sin6_port: u16,
    /// Network byte order.
    pub sin6_flowinfo: u32,
    /// The address, network byte order.
    pub sin6_addr: [u8; 16],
    /// The interface of a link-local address.
    pub sin6_scope_id: u32,
}

impl SockAddrIn6 {
    /// An address and port (host byte order) with no scope.
    pub fn new(addr: Ipv6Addr, port: u16) -> Self {
        SockAddrIn6 {
            sin6_family: AF_INET6 as u16,
            sin6_port: port.to_be(),
            sin6_flowinfo: 0,
            sin6_addr: addr.octets(),
            sin6_scope_id: 0,
        }
    }

    /// The address.
    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.sin6_addr)
    }

    /// The port in host byte order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.sin6_port)
    }
}

/// `struct sockaddr_nl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockAddrNl {
    /// `AF_NETLINK`.
    pub nl_family: u16,
    /// Zero.
    pub nl_pad: u16,
    /// Port id: 0 is the kernel; on bind, 0 lets the kernel choose.
    pub nl_pid: u32,
    /// Multicast group mask.
    pub nl_groups: u32,
}

impl SockAddrNl {
    /// A netlink address with port id `pid` and multicast `groups`.
    pub fn new(pid: u32, groups: u32) -> Self {
        SockAddrNl {
            nl_family: AF_NETLINK as u16,
            nl_pad: 0,
            nl_pid: pid,
            nl_groups: groups,
        }
    }

    /// The kernel's own address (port id 0, no groups).
    pub fn kernel() -> Self {
        SockAddrNl::new(0, 0)
    }
}

/// A socket address of one of the families this crate speaks, or the
/// family number of one it does not.
#[derive(Debug, Clone, Copy)]
pub enum SockAddr {
    /// `AF_INET`.
    In(SockAddrIn),
    /// `AF_INET6`.
    In6(SockAddrIn6),
    /// `AF_NETLINK`.
    Nl(SockAddrNl),
    /// Another family (its number), or an address too short for its family.
    Other(u16),
}

// `SockAddrIn` (abi.rs) has no `PartialEq`: compare what identifies it.
impl PartialEq for SockAddr {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (SockAddr::In(a), SockAddr::In(b)) => {
                (a.sin_family, a.sin_port, a.sin_addr) == (b.sin_family, b.sin_port, b.sin_addr)
            }
            (SockAddr::In6(a), SockAddr::In6(b)) => a == b,
            (SockAddr::Nl(a), SockAddr::Nl(b)) => a == b,
            (SockAddr::Other(a), SockAddr::Other(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for SockAddr {}

/// Room for any socket address (`struct sockaddr_storage` is 128 bytes).
const SOCKADDR_MAX: usize = 128;

impl SockAddr {
    /// An IPv4 address and port (host byte order).
    pub fn v4(addr: Ipv4Addr, port: u16) -> Self {
        SockAddr::In(SockAddrIn::new(addr, port))
    }

    /// An IPv6 address and port (host byte order).
    pub fn v6(addr: Ipv6Addr, port: u16) -> Self {
        SockAddr::In6(SockAddrIn6::new(addr, port))
    }

    /// The address family.
    pub fn family(&self) -> u16 {
        match self {
            SockAddr::In(_) => AF_INET as u16,
            SockAddr::In6(_) => AF_INET6 as u16,
            SockAddr::Nl(_) => AF_NETLINK as u16,
            SockAddr::Other(f) => *f,
        }
    }

    /// The bytes the kernel reads, in a buffer of [`SOCKADDR_MAX`], and
    /// how many of them count. `Other` cannot be sent (`EAFNOSUPPORT`).
    fn encode(&self) -> Result<([u8; SOCKADDR_MAX], usize), Errno> {
        let mut b = [0u8; SOCKADDR_MAX];
        let len = match self {
            SockAddr::In(a) => {
                b[0..2].copy_from_slice(&a.sin_family.to_ne_bytes());
                // Port and address are already in network byte order.
                b[2..4].copy_from_slice(&a.sin_port.to_ne_bytes());
                b[4..8].copy_from_slice(&a.sin_addr.to_ne_bytes());
                16
            }
            SockAddr::In6(a) => {
                b[0..2].copy_from_slice(&a.sin6_family.to_ne_bytes());
                b[2..4].copy_from_slice(&a.sin6_port.to_ne_bytes());
                b[4..8].copy_from_slice(&a.sin6_flowinfo.to_ne_bytes());
                b[8..24].copy_from_slice(&a.sin6_addr);
                b[24..28].copy_from_slice(&a.sin6_scope_id.to_ne_bytes());
                28
            }
            SockAddr::Nl(a) => {
                b[0..2].copy_from_slice(&a.nl_family.to_ne_bytes());
                b[4..8].copy_from_slice(&a.nl_pid.to_ne_bytes());
                b[8..12].copy_from_slice(&a.nl_groups.to_ne_bytes());
                12
            }
            SockAddr::Other(_) => return Err(Errno::EAFNOSUPPORT),
        };
        Ok((b, len))
    }

    /// Decodes what the kernel wrote: `len` bytes of `b` (the length the
    /// kernel reported, which may exceed the buffer; then the address was
    /// cut and is reported as `Other`). None for no address at all.
    fn decode(b: &[u8], len: usize) -> Option<SockAddr> {
        if len < 2 || b.len() < 2 {
            return None;
        }
        let family = u16::from_ne_bytes([b[0], b[1]]);
        if len > b.len() {
            return Some(SockAddr::Other(family));
        }
        let b = &b[..len];
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(match i32::from(family) {
            AF_INET if len >= 8 => SockAddr::In(SockAddrIn {
                sin_family: family,
                sin_port: u16_at(2),
                sin_addr: u32_at(4),
                sin_zero: [0; 8],
            }),
            AF_INET6 if len >= 24 => {
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&b[8..24]);
                SockAddr::In6(SockAddrIn6 {
                    sin6_family: family,
                    sin6_port: u16_at(2),
                    sin6_flowinfo: u32_at(4),
                    sin6_addr: addr,
                    sin6_scope_id: if len >= 28 { u32_at(24) } else { 0 },
                })
            }
            AF_NETLINK if len >= 12 => SockAddr::Nl(SockAddrNl {
                nl_family: family,
                nl_pad: 0,
                nl_pid: u32_at(4),
                nl_groups: u32_at(8),
            }),
            _ => SockAddr::Other(family),
        })
    }
}

/// The result of [`recvmsg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMsg {
    /// Bytes received (with `MSG_TRUNC` in the call's flags: the full
    /// length of the message, which may exceed the buffers).
    pub len: usize,
    /// The sender, if the socket reports one.
    pub from: Option<SockAddr>,
    /// `MSG_*` bits the kernel reported: [`MSG_TRUNC`] means the message
    /// did not fit and the rest was discarded.
    pub flags: i32,
}

fn iovecs(bufs: impl Iterator<Item = (usize, usize)>) -> Vec<IoVec> {
    bufs.map(|(iov_base, iov_len)| IoVec { iov_base, iov_len })
        .collect()
}

/// `sendmsg`: sends the concatenation of `bufs` as one message, to `to` if
/// given (else to the connected peer).
pub fn sendmsg(
    fd: i32,
    bufs: &[IoSlice<'_>],
    to: Option<&SockAddr>,
    flags: i32,
) -> Result<usize, Errno> {
    let iov = iovecs(bufs.iter().map(|b| (b.as_ptr() as usize, b.len())));
    let name = to.map(SockAddr::encode).transpose()?;
    let mut hdr = MsgHdr {
        msg_iov: iov.as_ptr() as usize,
        msg_iovlen: iov.len(),
        ..Default::default()
    };
    if let Some((bytes, len)) = &name {
        hdr.msg_name = bytes.as_ptr() as usize;
        hdr.msg_namelen = *len as i32;
    }
    // SAFETY: `hdr` points to `iov` (one entry per live slice of `bufs`,
    // with its exact length) and to `name` (a buffer of at least
    // `msg_namelen` bytes); all outlive the call and are only read.
    unsafe { raw(nr::SENDMSG, [fd as i64, ptr(&hdr), flags as i64, 0, 0, 0]) }.map(|n| n as usize)
}

/// `recvmsg`: receives one message scattered into `bufs`, with the
/// sender's address and the kernel's `MSG_*` flags.
pub fn recvmsg(fd: i32, bufs: &mut [IoSliceMut<'_>], flags: i32) -> Result<RecvMsg, Errno> {
    let iov = iovecs(bufs.iter_mut().map(|b| (b.as_mut_ptr() as usize, b.len())));
    let mut name = [0u8; SOCKADDR_MAX];
    let mut hdr = MsgHdr {
        msg_name: name.as_mut_ptr() as usize,
        msg_namelen: SOCKADDR_MAX as i32,
        msg_iov: iov.as_ptr() as usize,
        msg_iovlen: iov.len(),
        ..Default::default()
    };
    // SAFETY: `hdr` points to `iov`, whose entries are the live, exclusively
    // borrowed buffers of `bufs` with their lengths, and to `name`, which
    // has `msg_namelen` writable bytes; the kernel writes only within them
    // and into `hdr` itself, all alive until the call returns.
    let n = unsafe {
        raw(
            nr::RECVMSG,
            [fd as i64, ptr_mut(&mut hdr), flags as i64, 0, 0, 0],
        )
    }?;
    let namelen = usize::try_from(hdr.msg_namelen).unwrap_or(0);
    Ok(RecvMsg {
        len: n as usize,
        from: SockAddr::decode(&name, namelen),
        flags: hdr.msg_flags as i32,
    })
}

/// `sendto` a socket address of any supported family.
pub fn sendto(fd: i32, buf: &[u8], flags: i32, to: &SockAddr) -> Result<usize, Errno> {
    let (name, len) = to.encode()?;
    // SAFETY: the kernel reads `buf.len()` bytes of `buf` and `len` bytes
    // of `name`, both alive for the call.
    unsafe {
        raw(
            nr::SENDTO,
            [
                fd as i64,
                ptr(buf.as_ptr()),
                buf.len() as i64,
                flags as i64,
                ptr(name.as_ptr()),
                len as i64,
            ],
        )
    }
    .map(|n| n as usize)
}

/// `recvfrom`: one message into `buf`, with the sender's address (None if
/// the socket reports none). The count is the received length (or, with
/// `MSG_TRUNC`, the full length).
pub fn recvfrom(fd: i32, buf: &mut [u8], flags: i32) -> Result<(usize, Option<SockAddr>), Errno> {
    let mut name = [0u8; SOCKADDR_MAX];
    let mut namelen: u32 = SOCKADDR_MAX as u32;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, at
    // most `namelen` bytes into `name`, and the real length into `namelen`;
    // all are alive and exclusively ours for the call.
    let n = unsafe {
        raw(
            nr::RECVFROM,
            [
                fd as i64,
                ptr_mut(buf.as_mut_ptr()),
                buf.len() as i64,
                flags as i64,
                ptr_mut(name.as_mut_ptr()),
                ptr_mut(&mut namelen),
            ],
        )
    }?;
    Ok((n as usize, SockAddr::decode(&name, namelen as usize)))
}

/// `bind` to an address of any supported family.
pub fn bind(fd: i32, addr: &SockAddr) -> Result<(), Errno> {
    let (name, len) = addr.encode()?;
    // SAFETY: the kernel reads `len` bytes of `name`.
    unsafe {
        raw(
            nr::BIND,
            [fd as i64, ptr(name.as_ptr()), len as i64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `connect` to an address of any supported family.
pub fn connect(fd: i32, addr: &SockAddr) -> Result<(), Errno> {
    let (name, len) = addr.encode()?;
    // SAFETY: the kernel reads `len` bytes of `name`.
    unsafe {
        raw(
            nr::CONNECT,
            [fd as i64, ptr(name.as_ptr()), len as i64, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `getsockname` of a socket of any family.
pub fn getsockname(fd: i32) -> Result<SockAddr, Errno> {
    let mut name = [0u8; SOCKADDR_MAX];
    let mut namelen: u32 = SOCKADDR_MAX as u32;
    // SAFETY: the kernel writes at most `namelen` bytes into `name` and
    // the real length into `namelen`.
    unsafe {
        raw(
            nr::GETSOCKNAME,
            [
                fd as i64,
                ptr_mut(name.as_mut_ptr()),
                ptr_mut(&mut namelen),
                0,
                0,
                0,
            ],
        )
    }?;
    SockAddr::decode(&name, namelen as usize).ok_or(Errno::EINVAL)
}

/// `setsockopt` with a value given as bytes (a struct the caller encoded).
pub fn setsockopt_bytes(fd: i32, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `value.len()` bytes of `value`.
    unsafe {
        raw(
            nr::SETSOCKOPT,
            [
                fd as i64,
                level as i64,
                name as i64,
                ptr(value.as_ptr()),
                value.len() as i64,
                0,
            ],
        )
    }
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn generic_layouts() {
        assert_eq!(size_of::<IoVec>(), 16);
        assert_eq!(size_of::<MsgHdr>(), 56);
        assert_eq!(offset_of!(MsgHdr, msg_iov), 16);
        assert_eq!(offset_of!(MsgHdr, msg_iovlen), 24);
        assert_eq!(offset_of!(MsgHdr, msg_control), 32);
        assert_eq!(offset_of!(MsgHdr, msg_flags), 48);
        assert_eq!(size_of::<SockAddrIn6>(), 28);
        assert_eq!(offset_of!(SockAddrIn6, sin6_addr), 8);
        assert_eq!(offset_of!(SockAddrIn6, sin6_scope_id), 24);
        assert_eq!(size_of::<SockAddrNl>(), 12);
    }

    #[test]
    fn addresses_round_trip() {
        let cases = [
            SockAddr::v4(Ipv4Addr::new(10, 0, 0, 1), 80),
            SockAddr::v6("fc03::2".parse().unwrap(), 443),
            SockAddr::Nl(SockAddrNl::new(1234, 5)),
        ];
        for a in cases {
            let (b, len) = a.encode().unwrap();
            assert_eq!(SockAddr::decode(&b, len), Some(a));
        }
        assert_eq!(
            SockAddr::Other(1).encode().unwrap_err(),
            Errno::EAFNOSUPPORT
        );
    }

    #[test]
    fn odd_addresses_from_the_kernel() {
        // Nothing written, or too short for a family number.
        assert_eq!(SockAddr::decode(&[0; 128], 0), None);
        assert_eq!(SockAddr::decode(&[2, 0], 1), None);
        // A family whose address is cut short is reported as Other.
        let mut b = [0u8; 128];
        b[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
        assert_eq!(SockAddr::decode(&b, 10), Some(SockAddr::Other(10)));
        // A length beyond the buffer (the kernel truncated it).
        assert_eq!(SockAddr::decode(&b[..20], 28), Some(SockAddr::Other(10)));
        // Unknown family.
        b[..2].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(SockAddr::decode(&b, 110), Some(SockAddr::Other(1)));
    }
}

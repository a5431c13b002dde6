//! rtnetlink messages as bytes: the headers (`nlmsghdr`, `ifinfomsg`,
//! `ifaddrmsg`, `rtmsg`, `fib_rule_hdr`, `ndmsg`, `tcmsg`), attributes
//! (`rtattr`), a builder for requests and a parser for replies.
//!
//! Netlink uses the host's byte order (the kernel runs in this process, so
//! that is ours) except inside addresses, which are network order. Layouts
//! and numbers are those of `include/uapi/linux/{netlink,rtnetlink,
//! if_link,if_addr,neighbour,fib_rules,pkt_sched}.h`.
//!
//! Replies come from the kernel and are parsed as untrusted: every length
//! is checked against what is really there before it is used, and a bad
//! one is a [`WireError`], never a panic or an out-of-bounds read.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `NLMSG_ALIGNTO` and `RTA_ALIGNTO`.
pub const ALIGN: usize = 4;
/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct rtattr)`.
pub const RTA_HDRLEN: usize = 4;

/// Rounds `len` up to the netlink alignment.
pub const fn align(len: usize) -> usize {
    (len + ALIGN - 1) & !(ALIGN - 1)
}

/// Message types of the netlink core.
pub mod nlmsg {
    /// `NLMSG_NOOP`.
    pub const NOOP: u16 = 1;
    /// `NLMSG_ERROR`: an error, or an acknowledgement (error 0).
    pub const ERROR: u16 = 2;
    /// `NLMSG_DONE`: the end of a dump.
    pub const DONE: u16 = 3;
    /// `NLMSG_OVERRUN`.
    pub const OVERRUN: u16 = 4;
}

/// `nlmsg_flags` bits.
pub mod flags {
    /// `NLM_F_REQUEST`.
    pub const REQUEST: u16 = 0x01;
    /// `NLM_F_MULTI`: part of a multipart reply.
    pub const MULTI: u16 = 0x02;
    /// `NLM_F_ACK`: answer with an acknowledgement.
    pub const ACK: u16 = 0x04;
    /// `NLM_F_DUMP_INTR`: the dump was interrupted by a change.
    pub const DUMP_INTR: u16 = 0x10;
    /// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
    pub const DUMP: u16 = 0x300;
    /// `NLM_F_REPLACE`.
    pub const REPLACE: u16 = 0x100;
    /// `NLM_F_EXCL`.
    pub const EXCL: u16 = 0x200;
    /// `NLM_F_CREATE`.
    pub const CREATE: u16 = 0x400;
    /// `NLM_F_CAPPED` (on `NLMSG_ERROR`): only the request's header follows.
    pub const CAPPED: u16 = 0x100;
    /// `NLM_F_ACK_TLVS` (on `NLMSG_ERROR`/`DONE`): extended-ack attributes follow.
    pub const ACK_TLVS: u16 = 0x200;
}

/// rtnetlink message types.
pub mod rtm {
    /// `RTM_NEWLINK`.
    pub const NEWLINK: u16 = 16;
    /// `RTM_GETLINK`.
    pub const GETLINK: u16 = 18;
    /// `RTM_NEWADDR`.
    pub const NEWADDR: u16 = 20;
    /// `RTM_DELADDR`.
    pub const DELADDR: u16 = 21;
    /// `RTM_GETADDR`.
    pub const GETADDR: u16 = 22;
    /// `RTM_NEWROUTE`.
    pub const NEWROUTE: u16 = 24;
    /// `RTM_DELROUTE`.
    pub const DELROUTE: u16 = 25;
    /// `RTM_GETROUTE`.
    pub const GETROUTE: u16 = 26;
    /// `RTM_NEWNEIGH`.
    pub const NEWNEIGH: u16 = 28;
    /// `RTM_GETNEIGH`.
    pub const GETNEIGH: u16 = 30;
    /// `RTM_NEWRULE`.
    pub const NEWRULE: u16 = 32;
    /// `RTM_DELRULE`.
    pub const DELRULE: u16 = 33;
    /// `RTM_GETRULE`.
    pub const GETRULE: u16 = 34;
    /// `RTM_NEWQDISC`.
    pub const NEWQDISC: u16 = 36;
    /// `RTM_GETQDISC`.
    pub const GETQDISC: u16 = 38;
}

/// `IFLA_*` link attributes.
pub mod ifla {
    /// `IFLA_ADDRESS`: the link-layer address.
    pub const ADDRESS: u16 = 1;
    /// `IFLA_IFNAME`.
    pub const IFNAME: u16 = 3;
    /// `IFLA_MTU`.
    pub const MTU: u16 = 4;
    /// `IFLA_QDISC`.
    pub const QDISC: u16 = 6;
    /// `IFLA_OPERSTATE`.
    pub const OPERSTATE: u16 = 16;
}

/// `IFA_*` address attributes and `IFA_F_*` flags.
pub mod ifa {
    /// `IFA_ADDRESS`: the prefix address (the peer on point-to-point links).
    pub const ADDRESS: u16 = 1;
    /// `IFA_LOCAL`: the local address.
    pub const LOCAL: u16 = 2;
    /// `IFA_LABEL`.
    pub const LABEL: u16 = 3;
    /// `IFA_BROADCAST`.
    pub const BROADCAST: u16 = 4;
    /// `IFA_FLAGS`: all flags as a u32 (the header's byte holds the low 8).
    pub const FLAGS: u16 = 8;

    /// `IFA_F_NODAD`: skip duplicate address detection.
    pub const F_NODAD: u32 = 0x02;
    /// `IFA_F_DADFAILED`: duplicate address detection found the address in use.
    pub const F_DADFAILED: u32 = 0x08;
    /// `IFA_F_TENTATIVE`: duplicate address detection is still running.
    pub const F_TENTATIVE: u32 = 0x40;
    /// `IFA_F_PERMANENT`: configured, not autoconfigured.
    pub const F_PERMANENT: u32 = 0x80;
}

/// `RTA_*` route attributes and the `rtmsg` field values.
pub mod rta {
    /// `RTA_DST`.
    pub const DST: u16 = 1;
    /// `RTA_OIF`.
    pub const OIF: u16 = 4;
    /// `RTA_GATEWAY`.
    pub const GATEWAY: u16 = 5;
    /// `RTA_PRIORITY`: the metric.
    pub const PRIORITY: u16 = 6;
    /// `RTA_PREFSRC`.
    pub const PREFSRC: u16 = 7;
    /// `RTA_TABLE`: the table as a u32 (`rtm_table` holds only 8 bits).
    pub const TABLE: u16 = 15;

    /// `RTN_UNICAST`.
    pub const RTN_UNICAST: u8 = 1;
    /// `RTN_LOCAL`.
    pub const RTN_LOCAL: u8 = 2;
    /// `RTPROT_KERNEL`: made by the kernel (prefix routes).
    pub const RTPROT_KERNEL: u8 = 2;
    /// `RTPROT_BOOT`: what `ip route add` (and the route ioctl) uses.
    pub const RTPROT_BOOT: u8 = 3;
    /// `RT_SCOPE_UNIVERSE`.
    pub const SCOPE_UNIVERSE: u8 = 0;
    /// `RT_SCOPE_LINK`.
    pub const SCOPE_LINK: u8 = 253;
    /// `RT_TABLE_UNSPEC`: `rtm_table` when the table does not fit in 8 bits.
    pub const TABLE_UNSPEC: u8 = 0;
}

/// `FRA_*` rule attributes.
pub mod fra {
    /// `FRA_DST`.
    pub const DST: u16 = 1;
    /// `FRA_SRC`.
    pub const SRC: u16 = 2;
    /// `FRA_PRIORITY`.
    pub const PRIORITY: u16 = 6;
    /// `FRA_TABLE`.
    pub const TABLE: u16 = 15;
    /// `FR_ACT_TO_TBL`: look the packet up in a table.
    pub const ACT_TO_TBL: u8 = 1;
}

/// `NDA_*` neighbour attributes and `NUD_*` states.
pub mod nda {
    /// `NDA_DST`.
    pub const DST: u16 = 1;
    /// `NDA_LLADDR`.
    pub const LLADDR: u16 = 2;
    /// `NUD_PERMANENT`.
    pub const NUD_PERMANENT: u16 = 0x80;
}

/// `TCA_*` traffic-control attributes.
pub mod tca {
    /// `TCA_KIND`: the qdisc's name, NUL-terminated.
    pub const KIND: u16 = 1;
    /// `TC_H_ROOT`: the parent of a root qdisc.
    pub const H_ROOT: u32 = 0xffff_ffff;
}

/// `NLMSGERR_ATTR_*`: extended-ack attributes after an error.
pub mod nlmsgerr {
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation, NUL-terminated.
    pub const MSG: u16 = 1;
}

/// `IFF_*` link flags.
pub mod iff {
    /// `IFF_UP`.
    pub const UP: u32 = 0x1;
    /// `IFF_LOOPBACK`.
    pub const LOOPBACK: u32 = 0x8;
    /// `IFF_RUNNING`: administratively up and with carrier.
    pub const RUNNING: u32 = 0x40;
    /// `IFF_LOWER_UP`: the driver reports carrier.
    pub const LOWER_UP: u32 = 0x1_0000;
}

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u8 = 0;
/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

/// The family byte of an address.
pub fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// An address's bytes as netlink carries them (network order).
pub fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A reply that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a structure needs.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// A length field that is impossible where it is.
    BadLength {
        /// What carries it.
        what: &'static str,
        /// Its value.
        len: usize,
        /// Bytes left where it stands.
        room: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { what, need, have } => {
                write!(f, "{what} truncated: {have} bytes, {need} needed")
            }
            WireError::BadLength { what, len, room } => {
                write!(f, "{what} claims {len} bytes where {room} remain")
            }
        }
    }
}

impl std::error::Error for WireError {}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::Truncated {
            what,
            need: n,
            have: b.len(),
        })
    } else {
        Ok(())
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// A fixed family header following `nlmsghdr`.
pub trait FamilyHeader: Sized {
    /// Its size in bytes (a multiple of 4).
    const LEN: usize;
    /// Its name, for errors.
    const NAME: &'static str;
    /// Appends exactly [`Self::LEN`] bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads it from the start of `b`; `b` has at least `LEN` bytes.
    fn decode_exact(b: &[u8]) -> Self;
    /// Reads it from the start of `b`, checking the length.
    fn decode(b: &[u8]) -> Result<Self, WireError> {
        need(Self::NAME, b, Self::LEN)?;
        Ok(Self::decode_exact(b))
    }
}

/// `struct ifinfomsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfInfoMsg {
    /// `ifi_family`.
    pub family: u8,
    /// `ifi_type` (`ARPHRD_*`).
    pub ty: u16,
    /// `ifi_index`.
    pub index: i32,
    /// `ifi_flags` (`IFF_*`).
    pub flags: u32,
    /// `ifi_change`: which flags to change.
    pub change: u32,
}

impl FamilyHeader for IfInfoMsg {
    const LEN: usize = 16;
    const NAME: &'static str = "ifinfomsg";
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.family);
        out.push(0);
        out.extend_from_slice(&self.ty.to_ne_bytes());
        out.extend_from_slice(&self.index.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.change.to_ne_bytes());
    }
    fn decode_exact(b: &[u8]) -> Self {
        IfInfoMsg {
            family: b[0],
            ty: u16_at(b, 2),
            index: u32_at(b, 4) as i32,
            flags: u32_at(b, 8),
            change: u32_at(b, 12),
        }
    }
}

/// `struct ifaddrmsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAddrMsg {
    /// `ifa_family`.
    pub family: u8,
    /// `ifa_prefixlen`.
    pub prefixlen: u8,
    /// `ifa_flags`: the low 8 `IFA_F_*` bits.
    pub flags: u8,
    /// `ifa_scope`.
    pub scope: u8,
    /// `ifa_index`.
    pub index: u32,
}

impl FamilyHeader for IfAddrMsg {
    const LEN: usize = 8;
    const NAME: &'static str = "ifaddrmsg";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.family, self.prefixlen, self.flags, self.scope]);
        out.extend_from_slice(&self.index.to_ne_bytes());
    }
    fn decode_exact(b: &[u8]) -> Self {
        IfAddrMsg {
            family: b[0],
            prefixlen: b[1],
            flags: b[2],
            scope: b[3],
            index: u32_at(b, 4),
        }
    }
}

/// `struct rtmsg`; `struct fib_rule_hdr` has the same layout (its
/// `res1`, `res2`, `action` stand where `protocol`, `scope`, `type` are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMsg {
    /// `rtm_family`.
    pub family: u8,
    /// `rtm_dst_len`.
    pub dst_len: u8,
    /// `rtm_src_len`.
    pub src_len: u8,
    /// `rtm_tos`.
    pub tos: u8,
    /// `rtm_table` (8 bits; `RTA_TABLE` has the full number).
    pub table: u8,
    /// `rtm_protocol` (a rule's `res1`).
    pub protocol: u8,
    /// `rtm_scope` (a rule's `res2`).
    pub scope: u8,
    /// `rtm_type` (a rule's `action`).
    pub ty: u8,
    /// `rtm_flags`.
    pub flags: u32,
}

impl FamilyHeader for RtMsg {
    const LEN: usize = 12;
    const NAME: &'static str = "rtmsg";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.ty,
        ]);
        out.extend_from_slice(&self.flags.to_ne_bytes());
    }
    fn decode_exact(b: &[u8]) -> Self {
        RtMsg {
            family: b[0],
            dst_len: b[1],
            src_len: b[2],
            tos: b[3],
            table: b[4],
            protocol: b[5],
            scope: b[6],
            ty: b[7],
            flags: u32_at(b, 8),
        }
    }
}

/// `struct ndmsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NdMsg {
    /// `ndm_family`.
    pub family: u8,
    /// `ndm_ifindex`.
    pub ifindex: i32,
    /// `ndm_state` (`NUD_*`).
    pub state: u16,
    /// `ndm_flags`.
    pub flags: u8,
    /// `ndm_type`.
    pub ty: u8,
}

impl FamilyHeader for NdMsg {
    const LEN: usize = 12;
    const NAME: &'static str = "ndmsg";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.family, 0, 0, 0]);
        out.extend_from_slice(&self.ifindex.to_ne_bytes());
        out.extend_from_slice(&self.state.to_ne_bytes());
        out.extend_from_slice(&[self.flags, self.ty]);
    }
    fn decode_exact(b: &[u8]) -> Self {
        NdMsg {
            family: b[0],
            ifindex: u32_at(b, 4) as i32,
            state: u16_at(b, 8),
            flags: b[10],
            ty: b[11],
        }
    }
}

/// `struct tcmsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcMsg {
    /// `tcm_family`.
    pub family: u8,
    /// `tcm_ifindex`.
    pub ifindex: i32,
    /// `tcm_handle`.
    pub handle: u32,
    /// `tcm_parent`.
    pub parent: u32,
    /// `tcm_info`.
    pub info: u32,
}

impl FamilyHeader for TcMsg {
    const LEN: usize = 20;
    const NAME: &'static str = "tcmsg";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.family, 0, 0, 0]);
        out.extend_from_slice(&self.ifindex.to_ne_bytes());
        out.extend_from_slice(&self.handle.to_ne_bytes());
        out.extend_from_slice(&self.parent.to_ne_bytes());
        out.extend_from_slice(&self.info.to_ne_bytes());
    }
    fn decode_exact(b: &[u8]) -> Self {
        TcMsg {
            family: b[0],
            ifindex: u32_at(b, 4) as i32,
            handle: u32_at(b, 8),
            parent: u32_at(b, 12),
            info: u32_at(b, 16),
        }
    }
}

/// A request under construction: `nlmsghdr`, a family header, attributes.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A message of type `ty` with `flags` (`NLM_F_REQUEST` is added) and
    /// the family header `hdr`.
    pub fn new<H: FamilyHeader>(ty: u16, flags: u16, hdr: &H) -> Request {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0; 4]); // nlmsg_len, set by finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | self::flags::REQUEST).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // nlmsg_seq (finish), nlmsg_pid 0
        hdr.encode(&mut buf);
        Request { buf }
    }

    /// The message type.
    pub fn ty(&self) -> u16 {
        u16_at(&self.buf, 4)
    }

    /// The flags.
    pub fn flags(&self) -> u16 {
        u16_at(&self.buf, 6)
    }

    /// Adds flags.
    pub fn add_flags(&mut self, f: u16) {
        let v = self.flags() | f;
        self.buf[6..8].copy_from_slice(&v.to_ne_bytes());
    }

    /// Appends an attribute. Data longer than an attribute can hold
    /// (65531 bytes) is a bug of the caller, reported as `None`.
    pub fn attr(&mut self, ty: u16, data: &[u8]) -> Option<&mut Request> {
        let len = u16::try_from(RTA_HDRLEN + data.len()).ok()?;
        self.buf.resize(align(self.buf.len()), 0);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
        Some(self)
    }

    /// Appends a u32 attribute.
    pub fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Request {
        // Four bytes always fit.
        let _ = self.attr(ty, &v.to_ne_bytes());
        self
    }

    /// Appends an address attribute (network byte order).
    pub fn attr_ip(&mut self, ty: u16, ip: &IpAddr) -> &mut Request {
        let _ = self.attr(ty, &ip_bytes(ip));
        self
    }

    /// Appends a string attribute with its terminating NUL; None if too long.
    pub fn attr_str(&mut self, ty: u16, s: &str) -> Option<&mut Request> {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(ty, &data)
    }

    /// The finished bytes with sequence number `seq`; None if the message
    /// outgrew a u32 length (it cannot: attributes are bounded).
    pub fn finish(&self, seq: u32) -> Option<Vec<u8>> {
        let mut buf = self.buf.clone();
        let len = u32::try_from(buf.len()).ok()?;
        buf[0..4].copy_from_slice(&len.to_ne_bytes());
        buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Some(buf)
    }
}

/// One message of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
    /// The bytes after the header, `nlmsg_len - 16` of them.
    pub payload: &'a [u8],
}

/// The messages in one datagram, in order. A header whose length is
/// impossible ends the walk with an error.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator of [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        if b.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(WireError::Truncated {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have: b.len(),
            }));
        }
        let len = u32_at(b, 0) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(WireError::BadLength {
                what: "nlmsghdr",
                len,
                room: b.len(),
            }));
        }
        let msg = Message {
            ty: u16_at(b, 4),
            flags: u16_at(b, 6),
            seq: u32_at(b, 8),
            pid: u32_at(b, 12),
            payload: &b[NLMSG_HDRLEN..len],
        };
        // The last message need not be padded.
        self.rest = b.get(align(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// `rta_type` without the `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` bits.
    pub ty: u16,
    /// The data, `rta_len - 4` bytes.
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The data as a u32, if it is exactly 4 bytes.
    pub fn u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.data).ok().map(u32::from_ne_bytes)
    }

    /// The data as a u8, if it is exactly 1 byte.
    pub fn u8(&self) -> Option<u8> {
        match self.data {
            [b] => Some(*b),
            _ => None,
        }
    }

    /// The data as text up to the first NUL (lossy for non-UTF-8).
    pub fn string(&self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8_lossy(&self.data[..end]).into_owned()
    }

    /// The data as an address of `family`, if it has that family's size.
    pub fn ip(&self, family: u8) -> Option<IpAddr> {
        match family {
            AF_INET => <[u8; 4]>::try_from(self.data)
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            AF_INET6 => <[u8; 16]>::try_from(self.data)
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }
}

/// The attributes in `buf`. An impossible length ends the walk with an error.
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

/// Iterator of [`attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        if b.len() < RTA_HDRLEN {
            self.rest = &[];
            return Some(Err(WireError::Truncated {
                what: "rtattr",
                need: RTA_HDRLEN,
                have: b.len(),
            }));
        }
        let len = usize::from(u16_at(b, 0));
        if len < RTA_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(WireError::BadLength {
                what: "rtattr",
                len,
                room: b.len(),
            }));
        }
        let attr = Attr {
            ty: u16_at(b, 2) & 0x3fff,
            data: &b[RTA_HDRLEN..len],
        };
        self.rest = b.get(align(len)..).unwrap_or(&[]);
        Some(Ok(attr))
    }
}

/// Splits a payload into its family header and its attributes, checking
/// every attribute's length up front.
pub fn parse_payload<H: FamilyHeader>(payload: &[u8]) -> Result<(H, Vec<Attr<'_>>), WireError> {
    let hdr = H::decode(payload)?;
    let list = attrs(payload.get(align(H::LEN)..).unwrap_or(&[])).collect::<Result<_, _>>()?;
    Ok((hdr, list))
}

/// The first attribute of type `ty`.
pub fn find<'a, 'b>(list: &'b [Attr<'a>], ty: u16) -> Option<&'b Attr<'a>> {
    list.iter().find(|a| a.ty == ty)
}

/// The content of an `NLMSG_ERROR` (or the status of an `NLMSG_DONE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// 0 for an acknowledgement, else a negative errno.
    pub error: i32,
    /// The kernel's explanation (extended ack), if it gave one.
    pub message: Option<String>,
}

/// Parses an `NLMSG_ERROR` payload: `struct nlmsgerr` (the error and the
/// request's header, followed by the rest of the request unless
/// `NLM_F_CAPPED`), then extended-ack attributes if `NLM_F_ACK_TLVS`.
pub fn parse_error(msg: &Message<'_>) -> Result<ErrorMsg, WireError> {
    let b = msg.payload;
    need("nlmsgerr", b, 4 + NLMSG_HDRLEN)?;
    let error = u32_at(b, 0) as i32;
    let mut message = None;
    if msg.flags & flags::ACK_TLVS != 0 {
        let skip = if msg.flags & flags::CAPPED != 0 {
            4 + NLMSG_HDRLEN
        } else {
            // The whole request is echoed; its own length says how long.
            let req_len = u32_at(b, 4) as usize;
            if req_len < NLMSG_HDRLEN {
                return Err(WireError::BadLength {
                    what: "echoed request",
                    len: req_len,
                    room: b.len() - 4,
                });
            }
            4 + align(req_len)
        };
        // Attributes that fail to parse cost us only the explanation.
        if let Some(tlvs) = b.get(skip..) {
            message = attrs(tlvs)
                .map_while(Result::ok)
                .find(|a| a.ty == nlmsgerr::MSG)
                .map(|a| a.string())
                .filter(|s| !s.is_empty());
        }
    }
    Ok(ErrorMsg { error, message })
}

/// Parses an `NLMSG_DONE` payload: an int status (absent in very old
/// kernels: then 0), then extended-ack attributes if `NLM_F_ACK_TLVS`.
pub fn parse_done(msg: &Message<'_>) -> ErrorMsg {
    let b = msg.payload;
    if b.len() < 4 {
        return ErrorMsg {
            error: 0,
            message: None,
        };
    }
    let error = u32_at(b, 0) as i32;
    let message = if msg.flags & flags::ACK_TLVS != 0 {
        attrs(&b[4..])
            .map_while(Result::ok)
            .find(|a| a.ty == nlmsgerr::MSG)
            .map(|a| a.string())
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    ErrorMsg { error, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<H: FamilyHeader + PartialEq + fmt::Debug>(h: H) {
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out.len(), H::LEN, "{}", H::NAME);
        assert_eq!(H::decode(&out).unwrap(), h);
        assert!(H::decode(&out[..H::LEN - 1]).is_err());
    }

    #[test]
    fn headers_round_trip() {
        roundtrip(IfInfoMsg {
            family: 0,
            ty: 1,
            index: 3,
            flags: iff::UP,
            change: iff::UP,
        });
        roundtrip(IfAddrMsg {
            family: AF_INET6,
            prefixlen: 64,
            flags: 0x80,
            scope: 0,
            index: 2,
        });
        roundtrip(RtMsg {
            family: AF_INET,
            dst_len: 24,
            src_len: 0,
            tos: 0,
            table: 254,
            protocol: 3,
            scope: 253,
            ty: 1,
            flags: 0,
        });
        roundtrip(NdMsg {
            family: AF_INET,
            ifindex: 2,
            state: nda::NUD_PERMANENT,
            flags: 0,
            ty: 0,
        });
        roundtrip(TcMsg {
            family: 0,
            ifindex: 2,
            handle: 0x8001_0000,
            parent: tca::H_ROOT,
            info: 1,
        });
    }

    #[test]
    fn request_layout() {
        let hdr = IfAddrMsg {
            family: AF_INET,
            prefixlen: 24,
            flags: 0,
            scope: 0,
            index: 2,
        };
        let mut r = Request::new(rtm::NEWADDR, flags::CREATE | flags::EXCL, &hdr);
        r.attr_ip(ifa::LOCAL, &"10.0.0.2".parse().unwrap());
        r.attr_str(ifa::LABEL, "eth0").unwrap();
        r.add_flags(flags::ACK);
        let b = r.finish(7).unwrap();
        // 16 header + 8 ifaddrmsg + 8 (IFA_LOCAL) + 12 ("eth0\0" padded).
        assert_eq!(b.len(), 44);
        assert_eq!(u32_at(&b, 0), 44);
        assert_eq!(u16_at(&b, 4), rtm::NEWADDR);
        assert_eq!(
            u16_at(&b, 6),
            flags::REQUEST | flags::ACK | flags::CREATE | flags::EXCL
        );
        assert_eq!(u32_at(&b, 8), 7);
        assert_eq!(&b[24..32], &[8, 0, 2, 0, 10, 0, 0, 2]);
        assert_eq!(&b[32..41], &[9, 0, 3, 0, b'e', b't', b'h', b'0', 0]);
        assert_eq!(&b[41..44], &[0, 0, 0], "padding");

        // Parsed back as a reply would be.
        let msgs: Vec<_> = messages(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        let (h, a) = parse_payload::<IfAddrMsg>(msgs[0].payload).unwrap();
        assert_eq!(h, hdr);
        assert_eq!(
            find(&a, ifa::LOCAL).and_then(|a| a.ip(AF_INET)),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(find(&a, ifa::LABEL).unwrap().string(), "eth0");
        // Too big for an attribute.
        assert!(r.attr(1, &vec![0; 70000]).is_none());
    }

    fn msg_bytes(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize(align(b.len()), 0);
        b
    }

    #[test]
    fn several_messages_and_bad_lengths() {
        let mut buf = msg_bytes(rtm::NEWLINK, flags::MULTI, 1, &[1, 2, 3]);
        buf.extend(msg_bytes(nlmsg::DONE, flags::MULTI, 1, &0i32.to_ne_bytes()));
        let m: Vec<_> = messages(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].payload, &[1, 2, 3]);
        assert_eq!(m[1].ty, nlmsg::DONE);
        assert_eq!(parse_done(&m[1]).error, 0);

        // A length past the end, a length below the header, a short tail.
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            messages(&bad).next(),
            Some(Err(WireError::BadLength { .. }))
        ));
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            messages(&bad).next(),
            Some(Err(WireError::BadLength { .. }))
        ));
        let m: Vec<_> = messages(&buf[..buf.len() - 2]).collect();
        assert!(m[0].is_ok());
        assert!(m[1].is_err());
        assert_eq!(m.len(), 2, "the walk stops after an error");

        // Attributes: zero length (would loop forever if accepted), too long.
        assert!(attrs(&[0, 0, 1, 0]).next().unwrap().is_err());
        assert!(attrs(&[200, 0, 1, 0, 5]).next().unwrap().is_err());
        assert!(attrs(&[4, 0]).next().unwrap().is_err());
        // The nested flag is masked off; an unpadded last attribute is fine.
        let a: Vec<_> = attrs(&[5, 0, 3, 0x80, 9])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            a,
            vec![Attr {
                ty: 3,
                data: &[9][..]
            }]
        );
        assert_eq!(a[0].u8(), Some(9));
        assert_eq!(a[0].u32(), None);
        assert_eq!(a[0].ip(AF_INET), None);
    }

    #[test]
    fn errors_with_and_without_extended_ack() {
        // A plain ack: error 0 and the request header.
        let mut p = 0i32.to_ne_bytes().to_vec();
        p.extend(&msg_bytes(rtm::NEWADDR, 5, 9, &[])[..16]);
        let b = msg_bytes(nlmsg::ERROR, 0, 9, &p);
        let m = messages(&b).next().unwrap().unwrap();
        assert_eq!(
            parse_error(&m).unwrap(),
            ErrorMsg {
                error: 0,
                message: None
            }
        );

        // EEXIST, capped, with a message.
        let mut p = (-17i32).to_ne_bytes().to_vec();
        p.extend(&msg_bytes(rtm::NEWADDR, 5, 9, &[])[..16]);
        let mut tlv = Vec::new();
        let text = b"Nexthop has invalid gateway\0";
        tlv.extend(((4 + text.len()) as u16).to_ne_bytes());
        tlv.extend(nlmsgerr::MSG.to_ne_bytes());
        tlv.extend(text);
        p.extend(&tlv);
        let b = msg_bytes(nlmsg::ERROR, flags::CAPPED | flags::ACK_TLVS, 9, &p);
        let m = messages(&b).next().unwrap().unwrap();
        let e = parse_error(&m).unwrap();
        assert_eq!(e.error, -17);
        assert_eq!(e.message.as_deref(), Some("Nexthop has invalid gateway"));

        // Not capped: the whole request (24 bytes) is echoed first.
        let mut p = (-22i32).to_ne_bytes().to_vec();
        p.extend(msg_bytes(rtm::NEWROUTE, 5, 9, &[0; 8]));
        p.extend(&tlv);
        let b = msg_bytes(nlmsg::ERROR, flags::ACK_TLVS, 9, &p);
        let m = messages(&b).next().unwrap().unwrap();
        let e = parse_error(&m).unwrap();
        assert_eq!(e.error, -22);
        assert_eq!(e.message.as_deref(), Some("Nexthop has invalid gateway"));

        // Truncated nlmsgerr; an echoed length that makes no sense.
        let b = msg_bytes(nlmsg::ERROR, 0, 9, &[0; 6]);
        assert!(parse_error(&messages(&b).next().unwrap().unwrap()).is_err());
        let mut p = (-22i32).to_ne_bytes().to_vec();
        p.extend([0u8; 16]);
        let b = msg_bytes(nlmsg::ERROR, flags::ACK_TLVS, 9, &p);
        assert!(parse_error(&messages(&b).next().unwrap().unwrap()).is_err());
        // An echoed length past the end: no message, but still the errno.
        let mut p = (-22i32).to_ne_bytes().to_vec();
        p.extend(500u32.to_ne_bytes());
        p.extend([0u8; 12]);
        let b = msg_bytes(nlmsg::ERROR, flags::ACK_TLVS, 9, &p);
        let e = parse_error(&messages(&b).next().unwrap().unwrap()).unwrap();
        assert_eq!((e.error, e.message), (-22, None));
    }
}

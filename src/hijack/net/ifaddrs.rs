//! getifaddrs and freeifaddrs for the kernel's interfaces.
//!
//! The kernel's links and addresses from an rtnetlink dump (RTM_GETLINK,
//! then RTM_GETADDR) on a kernel NETLINK_ROUTE socket, laid out as glibc
//! does: one calloc'd block holding every entry with its addresses and name,
//! so glibc's freeifaddrs (a plain free) and ours are interchangeable. As
//! glibc: first one AF_PACKET entry per link (ifa_data = its
//! rtnl_link_stats), then one entry per address.

use crate::hijack::host::{fail, libc_fn};
use crate::hijack::lifecycle::{active, forked};
use lkl::netcfg::wire::{self, ifa, rtm, IfAddrMsg, IfInfoMsg};
use lkl::netcfg::Rtnl;

/// `IFLA_BROADCAST`.
const IFLA_BROADCAST: u16 = 2;
/// `IFLA_STATS`: `struct rtnl_link_stats` (25 u32 counters).
const IFLA_STATS: u16 = 7;
const STATS_WORDS: usize = 25;

/// One link of the dump.
struct Link {
    index: i32,
    hatype: u16,
    flags: u32,
    name: Vec<u8>,
    hwaddr: Vec<u8>,
    broadcast: Vec<u8>,
    stats: Option<[u32; STATS_WORDS]>,
}

/// A socket address to place in an entry.
enum Sa {
    Packet {
        index: i32,
        hatype: u16,
        addr: Vec<u8>,
    },
    Ip {
        family: u8,
        bytes: Vec<u8>,
        scope: u32,
    },
}

/// One entry before layout.
struct Spec {
    name: Vec<u8>,
    flags: u32,
    addr: Option<Sa>,
    netmask: Option<Sa>,
    /// Broadcast, or the peer on a point-to-point link.
    other: Option<Sa>,
    stats: Option<[u32; STATS_WORDS]>,
}

/// Why getifaddrs failed, as an errno.
fn dump_error(e: lkl::netcfg::NetcfgError) -> i32 {
    use lkl::netcfg::NetcfgError as E;
    match e {
        E::Syscall { errno, .. } | E::Rejected { errno, .. } => errno.0,
        _ => libc::EIO,
    }
}

fn links(rtnl: &mut Rtnl) -> Result<Vec<Link>, i32> {
    let req = wire::Request::new(rtm::GETLINK, 0, &IfInfoMsg::default());
    let replies = rtnl.dump(req, rtm::NEWLINK, "links").map_err(dump_error)?;
    let mut out = Vec::new();
    for r in &replies {
        let Ok((hdr, attrs)) = wire::parse_payload::<IfInfoMsg>(&r.payload) else {
            continue;
        };
        let data = |ty| wire::find(&attrs, ty).map(|a| a.data.to_vec());
        let name = wire::find(&attrs, wire::ifla::IFNAME)
            .map(|a| a.string().into_bytes())
            .unwrap_or_default();
        let stats = wire::find(&attrs, IFLA_STATS).map(|a| {
            let mut s = [0u32; STATS_WORDS];
            for (w, c) in s.iter_mut().zip(a.data.chunks_exact(4)) {
                *w = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
            s
        });
        out.push(Link {
            index: hdr.index,
            hatype: hdr.ty,
            flags: hdr.flags,
            name,
            hwaddr: data(wire::ifla::ADDRESS).unwrap_or_default(),
            broadcast: data(IFLA_BROADCAST).unwrap_or_default(),
            stats,
        });
    }
    Ok(out)
}

fn netmask(family: u8, prefix: u8) -> Vec<u8> {
    let bytes = if family == wire::AF_INET { 4 } else { 16 };
    let mut m = vec![0u8; bytes];
    for (i, b) in m.iter_mut().enumerate() {
        let bits = (usize::from(prefix)).saturating_sub(i * 8).min(8);
        *b = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
    }
    m
}

/// The scope id glibc gives an IPv6 address: the interface for link-local
/// unicast and multicast addresses, 0 otherwise.
fn scope_of(family: u8, bytes: &[u8], index: u32) -> u32 {
    let link_local = family == wire::AF_INET6
        && bytes.len() == 16
        && ((bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80)
            || (bytes[0] == 0xff && bytes[1] & 0x0f == 2));
    if link_local {
        index
    } else {
        0
    }
}

fn specs() -> Result<Vec<Spec>, i32> {
    let mut rtnl = Rtnl::open().map_err(dump_error)?;
    let links = links(&mut rtnl)?;
    let req = wire::Request::new(rtm::GETADDR, 0, &IfAddrMsg::default());
    let addrs = rtnl
        .dump(req, rtm::NEWADDR, "addresses")
        .map_err(dump_error)?;
    let mut out: Vec<Spec> = links
        .iter()
        .map(|l| Spec {
            name: l.name.clone(),
            flags: l.flags,
            addr: Some(Sa::Packet {
                index: l.index,
                hatype: l.hatype,
                addr: l.hwaddr.clone(),
            }),
            netmask: None,
            other: (!l.broadcast.is_empty()).then(|| Sa::Packet {
                index: l.index,
                hatype: l.hatype,
                addr: l.broadcast.clone(),
            }),
            stats: l.stats,
        })
        .collect();
    for r in &addrs {
        let Ok((hdr, attrs)) = wire::parse_payload::<IfAddrMsg>(&r.payload) else {
            continue;
        };
        if hdr.family != wire::AF_INET && hdr.family != wire::AF_INET6 {
            continue;
        }
        let link = links.iter().find(|l| l.index as u32 == hdr.index);
        let ip = |ty| {
            wire::find(&attrs, ty).map(|a| Sa::Ip {
                family: hdr.family,
                bytes: a.data.to_vec(),
                scope: scope_of(hdr.family, a.data, hdr.index),
            })
        };
        // As glibc: IFA_LOCAL is the address when present; then IFA_ADDRESS
        // is the other end (the peer on point-to-point links), unless a
        // broadcast address takes that place.
        let has_local = wire::find(&attrs, ifa::LOCAL).is_some();
        let addr = if has_local {
            ip(ifa::LOCAL)
        } else {
            ip(ifa::ADDRESS)
        };
        let other = ip(ifa::BROADCAST).or_else(|| if has_local { ip(ifa::ADDRESS) } else { None });
        let flags = link.map_or(0, |l| l.flags);
        let name = match wire::find(&attrs, ifa::LABEL) {
            Some(label) if hdr.family == wire::AF_INET => label.string().into_bytes(),
            _ => link.map(|l| l.name.clone()).unwrap_or_default(),
        };
        out.push(Spec {
            name,
            flags,
            addr,
            netmask: Some(Sa::Ip {
                family: hdr.family,
                bytes: netmask(hdr.family, hdr.prefixlen),
                scope: 0,
            }),
            other,
            stats: None,
        });
    }
    Ok(out)
}

/// One entry of the block: glibc keeps each entry's addresses and name
/// next to it, so one free releases all.
#[repr(C)]
struct Entry {
    ifa: libc::ifaddrs,
    addr: libc::sockaddr_storage,
    netmask: libc::sockaddr_storage,
    other: libc::sockaddr_storage,
    name: [u8; 16],
    stats: [u32; STATS_WORDS],
}

/// Writes `sa` into `out` and returns it as a sockaddr pointer.
fn write_sockaddr(sa: &Sa, out: &mut libc::sockaddr_storage) -> *mut libc::sockaddr {
    let p = out as *mut libc::sockaddr_storage;
    match sa {
        Sa::Packet {
            index,
            hatype,
            addr,
        } => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_ll.
            let ll = unsafe { &mut *p.cast::<libc::sockaddr_ll>() };
            ll.sll_family = libc::AF_PACKET as u16;
            ll.sll_ifindex = *index;
            ll.sll_hatype = *hatype;
            let n = addr.len().min(ll.sll_addr.len());
            ll.sll_halen = n as u8;
            ll.sll_addr[..n].copy_from_slice(&addr[..n]);
        }
        Sa::Ip { family, bytes, .. } if *family == wire::AF_INET => {
            // SAFETY: as above, for sockaddr_in.
            let sin = unsafe { &mut *p.cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            let mut o = [0u8; 4];
            let n = bytes.len().min(4);
            o[..n].copy_from_slice(&bytes[..n]);
            sin.sin_addr.s_addr = u32::from_ne_bytes(o);
        }
        Sa::Ip { bytes, scope, .. } => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *p.cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            let n = bytes.len().min(16);
            sin6.sin6_addr.s6_addr[..n].copy_from_slice(&bytes[..n]);
            sin6.sin6_scope_id = *scope;
        }
    }
    p.cast()
}

/// Lays `specs` out in one calloc'd block; null when out of memory.
fn layout(specs: &[Spec]) -> *mut libc::ifaddrs {
    if specs.is_empty() {
        return std::ptr::null_mut();
    }
    // SAFETY: a zeroed array of `len` entries (all-zero is a valid Entry).
    let block = unsafe { libc::calloc(specs.len(), std::mem::size_of::<Entry>()) } as *mut Entry;
    if block.is_null() {
        return block.cast();
    }
    for (i, s) in specs.iter().enumerate() {
        // SAFETY: entry i lies inside the block; no other reference to it.
        let e = unsafe { &mut *block.add(i) };
        let n = s.name.len().min(e.name.len() - 1);
        e.name[..n].copy_from_slice(&s.name[..n]);
        e.ifa.ifa_name = e.name.as_mut_ptr().cast();
        e.ifa.ifa_flags = s.flags;
        if let Some(a) = &s.addr {
            e.ifa.ifa_addr = write_sockaddr(a, &mut e.addr);
        }
        if let Some(m) = &s.netmask {
            e.ifa.ifa_netmask = write_sockaddr(m, &mut e.netmask);
        }
        if let Some(o) = &s.other {
            e.ifa.ifa_ifu = write_sockaddr(o, &mut e.other);
        }
        if let Some(st) = &s.stats {
            e.stats = *st;
            e.ifa.ifa_data = e.stats.as_mut_ptr().cast();
        }
        if i + 1 < specs.len() {
            // SAFETY: the next entry is inside the block too.
            e.ifa.ifa_next = unsafe { &mut (*block.add(i + 1)).ifa };
        }
    }
    block.cast()
}

/// # Safety
/// libc's contract for `getifaddrs`.
#[no_mangle]
pub unsafe extern "C" fn getifaddrs(ifap: *mut *mut libc::ifaddrs) -> std::ffi::c_int {
    if !active() {
        return libc_fn!(getifaddrs, fn(*mut *mut libc::ifaddrs) -> std::ffi::c_int; ifap);
    }
    if ifap.is_null() {
        return fail(libc::EFAULT);
    }
    if forked() {
        // The kernel stayed with the parent.
        return fail(libc::ENETDOWN);
    }
    let specs = match specs() {
        Ok(s) => s,
        Err(e) => {
            return fail(e);
        }
    };
    let list = layout(&specs);
    if list.is_null() && !specs.is_empty() {
        return fail(libc::ENOMEM);
    }
    // SAFETY: the program's result pointer, checked above.
    unsafe { *ifap = list };
    0
}

/// # Safety
/// libc's contract for `freeifaddrs`: a list from either getifaddrs is one
/// malloc'd block.
#[no_mangle]
pub unsafe extern "C" fn freeifaddrs(ifa: *mut libc::ifaddrs) {
    // SAFETY: the block getifaddrs (ours or glibc's) allocated, or null.
    unsafe { libc::free(ifa.cast()) };
}

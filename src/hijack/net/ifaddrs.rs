//! The kernel's interfaces and addresses, asked through a kernel socket
//! (the host's would describe the wrong network).

use lkl::syscall::{self as sys, nr, raw, Errno};

const SIOCGIFCONF: i64 = 0x8912;

/// `struct ifreq`: a name and a 24-byte union (an address here).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; 16],
    addr: [u8; 24],
}

/// `struct ifconf` (x86_64 and the kernel's 64-bit generic ABI agree).
#[repr(C)]
struct IfConf {
    len: i32,
    buf: *mut IfReq,
}

/// The kernel's IPv4 interface addresses: (interface name, address).
pub fn ipv4_addresses() -> Result<Vec<(String, std::net::Ipv4Addr)>, Errno> {
    let fd = sys::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    let mut reqs = [IfReq {
        name: [0; 16],
        addr: [0; 24],
    }; 64];
    let mut conf = IfConf {
        len: std::mem::size_of_val(&reqs) as i32,
        buf: reqs.as_mut_ptr(),
    };
    // SAFETY: an ifconf pointing at our array of `len` bytes; the kernel
    // writes at most that much and sets len to what it wrote.
    let r = unsafe {
        raw(
            nr::IOCTL,
            [
                fd.into(),
                SIOCGIFCONF,
                &mut conf as *mut IfConf as i64,
                0,
                0,
                0,
            ],
        )
    };
    let _ = sys::close(fd);
    r?;
    let n = (conf.len.max(0) as usize / std::mem::size_of::<IfReq>()).min(reqs.len());
    Ok(reqs[..n]
        .iter()
        .map(|r| {
            let end = r.name.iter().position(|&b| b == 0).unwrap_or(16);
            let name = String::from_utf8_lossy(&r.name[..end]).into_owned();
            let a = [r.addr[4], r.addr[5], r.addr[6], r.addr[7]];
            (name, std::net::Ipv4Addr::from(a))
        })
        .collect())
}

/// Whether the kernel has a non-loopback IPv4 address.
pub fn has_ipv4() -> Result<bool, Errno> {
    Ok(ipv4_addresses()?.iter().any(|(_, a)| !a.is_loopback()))
}

const SIOCGIFNAME: i64 = 0x8910;
const SIOCGIFINDEX: i64 = 0x8933;
/// Interface indexes `if_nameindex` looks at.
const MAX_INDEX: i32 = 256;

/// `struct ifreq` with an int in the union (ifindex).
#[repr(C)]
struct IfReqIndex {
    name: [u8; 16],
    index: i32,
    _pad: [u8; 20],
}

fn ifreq_call(req: &mut IfReqIndex, cmd: i64) -> Result<(), Errno> {
    let fd = sys::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // SAFETY: a 40-byte ifreq the kernel reads and writes.
    let r = unsafe {
        raw(
            nr::IOCTL,
            [fd.into(), cmd, req as *mut IfReqIndex as i64, 0, 0, 0],
        )
    };
    let _ = sys::close(fd);
    r.map(drop)
}

/// The kernel's index of interface `name`.
pub fn name_to_index(name: &[u8]) -> Result<u32, Errno> {
    if name.len() >= 16 {
        return Err(Errno::ENODEV);
    }
    let mut req = IfReqIndex {
        name: [0; 16],
        index: 0,
        _pad: [0; 20],
    };
    req.name[..name.len()].copy_from_slice(name);
    ifreq_call(&mut req, SIOCGIFINDEX)?;
    Ok(req.index as u32)
}

/// The kernel's name of interface `index`.
pub fn index_to_name(index: u32) -> Result<Vec<u8>, Errno> {
    let mut req = IfReqIndex {
        name: [0; 16],
        index: i32::try_from(index).map_err(|_| Errno::ENXIO)?,
        _pad: [0; 20],
    };
    ifreq_call(&mut req, SIOCGIFNAME).map_err(
        |e| {
            if e == Errno::ENODEV {
                Errno::ENXIO
            } else {
                e
            }
        },
    )?;
    let end = req.name.iter().position(|&b| b == 0).unwrap_or(15);
    Ok(req.name[..end].to_vec())
}

use std::ffi::{c_char, c_uint};

use crate::hijack::host::{fail, libc_fn, set_errno};
use crate::hijack::lifecycle::active;

/// # Safety
/// libc's contract for `if_nametoindex`.
#[no_mangle]
pub unsafe extern "C" fn if_nametoindex(name: *const c_char) -> c_uint {
    if !active() {
        return match libc_fn!(if_nametoindex, fn(*const c_char) -> c_uint) {
            // SAFETY: glibc's function with the program's argument.
            Some(f) => unsafe { f(name) },
            None => 0,
        };
    }
    if name.is_null() {
        set_errno(libc::ENODEV);
        return 0;
    }
    // SAFETY: the program's NUL-terminated name.
    let n = unsafe { std::ffi::CStr::from_ptr(name) };
    match name_to_index(n.to_bytes()) {
        Ok(i) => i,
        Err(e) => {
            set_errno(e.0);
            0
        }
    }
}

/// # Safety
/// libc's contract for `if_indextoname` (`buf` holds IF_NAMESIZE bytes).
#[no_mangle]
pub unsafe extern "C" fn if_indextoname(index: c_uint, buf: *mut c_char) -> *mut c_char {
    if !active() {
        return match libc_fn!(if_indextoname, fn(c_uint, *mut c_char) -> *mut c_char) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(index, buf) },
            None => std::ptr::null_mut(),
        };
    }
    match index_to_name(index) {
        Ok(n) if !buf.is_null() => {
            // SAFETY: IF_NAMESIZE (16) bytes; the name has at most 15.
            unsafe {
                std::ptr::copy_nonoverlapping(n.as_ptr(), buf.cast::<u8>(), n.len());
                *buf.add(n.len()) = 0;
            }
            buf
        }
        Ok(_) => {
            set_errno(libc::EINVAL);
            std::ptr::null_mut()
        }
        Err(e) => {
            set_errno(e.0);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// libc's contract for `if_nameindex`: one malloc'd array, each name
/// malloc'd on its own (glibc's layout, so either if_freenameindex works).
#[no_mangle]
pub unsafe extern "C" fn if_nameindex() -> *mut libc::if_nameindex {
    if !active() {
        return match libc_fn!(if_nameindex, fn() -> *mut libc::if_nameindex) {
            // SAFETY: glibc's function.
            Some(f) => unsafe { f() },
            None => std::ptr::null_mut(),
        };
    }
    let found: Vec<(u32, Vec<u8>)> = (1..=MAX_INDEX as u32)
        .filter_map(|i| index_to_name(i).ok().map(|n| (i, n)))
        .collect();
    let size = std::mem::size_of::<libc::if_nameindex>() * (found.len() + 1);
    // SAFETY: a fresh zeroed array with room for the entries and the end mark.
    let arr = unsafe { libc::calloc(1, size) } as *mut libc::if_nameindex;
    if arr.is_null() {
        set_errno(libc::ENOBUFS);
        return arr;
    }
    for (k, (i, n)) in found.iter().enumerate() {
        // SAFETY: n.len()+1 bytes, written below.
        let s = unsafe { libc::malloc(n.len() + 1) } as *mut u8;
        if s.is_null() {
            // SAFETY: frees what was built so far.
            unsafe { if_freenameindex(arr) };
            set_errno(libc::ENOBUFS);
            return std::ptr::null_mut();
        }
        // SAFETY: entry k is inside the array; s holds the name and NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(n.as_ptr(), s, n.len());
            *s.add(n.len()) = 0;
            (*arr.add(k)).if_index = *i;
            (*arr.add(k)).if_name = s.cast();
        }
    }
    arr
}

/// # Safety
/// libc's contract for `if_freenameindex`.
#[no_mangle]
pub unsafe extern "C" fn if_freenameindex(arr: *mut libc::if_nameindex) {
    if arr.is_null() {
        return;
    }
    let mut p = arr;
    // SAFETY: walks the array up to its zero entry, freeing each name.
    unsafe {
        while (*p).if_index != 0 || !(*p).if_name.is_null() {
            libc::free((*p).if_name.cast());
            p = p.add(1);
        }
        libc::free(arr.cast());
    }
}

// ---- getifaddrs ---------------------------------------------------------------
//
// The kernel's links and addresses from an rtnetlink dump (RTM_GETLINK,
// then RTM_GETADDR) on a kernel NETLINK_ROUTE socket, laid out as glibc
// does: one calloc'd block holding every entry with its addresses and name,
// so glibc's freeifaddrs (a plain free) and ours are interchangeable. As
// glibc: first one AF_PACKET entry per link (ifa_data = its
// rtnl_link_stats), then one entry per address.

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
fn place(sa: &Sa, out: &mut libc::sockaddr_storage) -> *mut libc::sockaddr {
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
            e.ifa.ifa_addr = place(a, &mut e.addr);
        }
        if let Some(m) = &s.netmask {
            e.ifa.ifa_netmask = place(m, &mut e.netmask);
        }
        if let Some(o) = &s.other {
            e.ifa.ifa_ifu = place(o, &mut e.other);
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
        return match libc_fn!(getifaddrs, fn(*mut *mut libc::ifaddrs) -> std::ffi::c_int) {
            // SAFETY: glibc's function with the program's argument.
            Some(f) => unsafe { f(ifap) },
            None => fail(libc::ENOSYS),
        };
    }
    if ifap.is_null() {
        return fail(libc::EFAULT);
    }
    if crate::hijack::lifecycle::forked() {
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

//! Name resolution through the kernel. glibc's resolver sends its queries
//! through internal socket calls no preload library sees, so a hijacked
//! program would ask the host's DNS over the host's network. With a
//! `nameserver` in the config, these functions answer instead: numeric
//! addresses, then the host's `/etc/hosts`, then the nameservers over
//! kernel sockets (`lkl::dns`). Without one, every call goes to glibc.
//!
//! Here is what the three APIs share: whether resolution is ours
//! (`client`) and `resolve`, a name's addresses in one family or both. The
//! APIs: addrinfo.rs (getaddrinfo), nameinfo.rs (getnameinfo), hostent.rs
//! (the gethostbyname family).

use std::ffi::{c_char, c_int, CStr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use lkl::dns::files;
use lkl::dns::wire::{self, TYPE_A, TYPE_AAAA};
use lkl::dns::{Client, LookupError};

use crate::hijack::host::host_syscall;
use crate::hijack::lifecycle::{active, diag};
use crate::hijack::net::ifreq;

mod addrinfo;
mod hostent;
mod nameinfo;

/// glibc's value (not in the libc crate).
const EAI_ADDRFAMILY: c_int = -9;

/// The config's `nameserver` list (empty: glibc resolves).
static NAMESERVERS: OnceLock<Vec<IpAddr>> = OnceLock::new();

/// Records the config's `nameserver` list (once, from init).
pub fn set_nameservers(servers: Vec<IpAddr>) {
    let _ = NAMESERVERS.set(servers);
}

/// The file a resolver of its own reads (musl's, Go's, static glibc's):
/// with a `nameserver` in the config, an open of it for reading gets the
/// config's list instead (`resolv_conf`).
const RESOLV_CONF: &[u8] = b"/etc/resolv.conf";

/// An open of `/etc/resolv.conf` for reading, with a `nameserver` in the
/// config: a memfd saying the config's nameservers (what the kernel's own
/// `/etc/resolv.conf` says), so that a resolver that reads the file itself
/// (musl's, Go's, static glibc's: their opens reach the hooks through the
/// system-call tier) asks them, over kernel sockets, and not the host's.
/// None: not that file, or resolution is not ours (the host's file).
pub fn resolv_conf(path: *const c_char, flags: c_int) -> Option<c_int> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the program's NUL-terminated path (checked non-null).
    if unsafe { CStr::from_ptr(path) }.to_bytes() != RESOLV_CONF {
        return None;
    }
    let writes = libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_PATH;
    let servers = NAMESERVERS.get()?;
    if flags & writes != 0 || servers.is_empty() || !active() {
        return None;
    }
    let mut text = String::from("# lkl-hijack: the config's nameserver\n");
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    let cloexec = if flags & libc::O_CLOEXEC != 0 {
        libc::MFD_CLOEXEC
    } else {
        0
    };
    // SAFETY: a NUL-terminated name and flags.
    let fd = unsafe {
        host_syscall!(
            libc::SYS_memfd_create,
            c"lkl-hijack-resolv.conf".as_ptr(),
            cloexec
        )
    } as c_int;
    if fd < 0 {
        return Some(-1);
    }
    // SAFETY: our own bytes to our own memfd, then back to its start.
    let ok = unsafe {
        host_syscall!(libc::SYS_write, fd, text.as_ptr(), text.len()) == text.len() as i64
            && host_syscall!(libc::SYS_lseek, fd, 0, libc::SEEK_SET) == 0
    };
    if !ok {
        let e = crate::hijack::host::errno();
        crate::hijack::host::close(fd);
        crate::hijack::host::set_errno(e);
        return Some(-1);
    }
    Some(fd)
}

/// A client for the config's nameservers, if resolution is ours.
fn client() -> Option<Client> {
    let servers = NAMESERVERS.get().map_or(&[][..], |s| &s[..]);
    (active() && !servers.is_empty()).then(|| Client::new(servers.to_vec()))
}

fn read_host_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Why a name gave no addresses, as getaddrinfo says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    NoName,
    NoData,
    Again,
    Family,
}

impl Fail {
    fn eai(self) -> c_int {
        match self {
            Fail::NoName => libc::EAI_NONAME,
            Fail::NoData => libc::EAI_NODATA,
            Fail::Again => libc::EAI_AGAIN,
            Fail::Family => EAI_ADDRFAMILY,
        }
    }

    fn h_errno(self) -> c_int {
        match self {
            Fail::NoName | Fail::Family => 1, // HOST_NOT_FOUND
            Fail::Again => 2,                 // TRY_AGAIN
            Fail::NoData => 4,                // NO_DATA
        }
    }
}

/// Addresses for a name, and its canonical name.
struct Found {
    canonical: String,
    addrs: Vec<IpAddr>,
}

fn wants(family: c_int, a: &IpAddr) -> bool {
    match family {
        libc::AF_INET => a.is_ipv4(),
        libc::AF_INET6 => a.is_ipv6(),
        _ => true,
    }
}

/// A numeric address as glibc reads one (inet_aton's forms for IPv4).
fn numeric(name: &str) -> Option<IpAddr> {
    if let Ok(a) = name.parse::<IpAddr>() {
        return Some(a);
    }
    let c = std::ffi::CString::new(name).ok()?;
    let mut a = libc::in_addr { s_addr: 0 };
    // SAFETY: a NUL-terminated string and an in_addr to fill.
    (unsafe { inet_aton(c.as_ptr(), &mut a) } != 0)
        .then(|| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.s_addr))))
}

extern "C" {
    fn inet_aton(cp: *const c_char, inp: *mut libc::in_addr) -> c_int;
}

/// Does the kernel have a usable address of this family (AI_ADDRCONFIG)?
/// IPv4: a non-loopback address in SIOCGIFCONF. IPv6: a route towards a
/// global address (a UDP connect sends nothing).
fn configured(family: c_int) -> bool {
    if family == libc::AF_INET {
        return ifreq::has_ipv4().unwrap_or(true);
    }
    let Ok(fd) = lkl::syscall::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    else {
        return false;
    };
    let probe = lkl::syscall::SockAddr::v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 53);
    let ok = lkl::syscall::connect(fd, &probe).is_ok();
    let _ = lkl::syscall::close(fd);
    ok
}

/// Resolves `name` for `family` (AF_UNSPEC: both) the way this module
/// promises: numeric, hosts file, nameservers.
fn resolve(client: &Client, name: &str, family: c_int, flags: c_int) -> Result<Found, Fail> {
    if let Some(a) = numeric(name) {
        if !wants(family, &a) {
            return Err(Fail::Family);
        }
        return Ok(Found {
            canonical: name.to_string(),
            addrs: vec![a],
        });
    }
    if flags & libc::AI_NUMERICHOST != 0 {
        return Err(Fail::NoName);
    }
    if let Some(e) = files::hosts_lookup(&read_host_file("/etc/hosts"), name) {
        let addrs: Vec<IpAddr> = e.addrs.into_iter().filter(|a| wants(family, a)).collect();
        if !addrs.is_empty() {
            return Ok(Found {
                canonical: e.canonical,
                addrs,
            });
        }
    }
    let mut types = Vec::new();
    let addrconfig = flags & libc::AI_ADDRCONFIG != 0;
    if family != libc::AF_INET && (!addrconfig || configured(libc::AF_INET6)) {
        types.push(TYPE_AAAA);
    }
    if family != libc::AF_INET6 && (!addrconfig || configured(libc::AF_INET)) {
        types.push(TYPE_A);
    }
    if types.is_empty() {
        return Err(Fail::NoData);
    }
    let mut canonical = None;
    let mut addrs = Vec::new();
    let mut fail = Fail::NoData;
    for t in types {
        match client.ask(name, t) {
            Ok(reply) => {
                let (canon, a) = wire::addresses(&reply, name);
                canonical.get_or_insert(canon);
                addrs.extend(a);
            }
            Err(LookupError::NoName) => {
                fail = Fail::NoName;
                break;
            }
            Err(LookupError::BadName) => return Err(Fail::NoName),
            Err(LookupError::Failed(why)) => {
                diag(&format!("resolving {name}: {why}"));
                fail = Fail::Again;
            }
        }
    }
    if family == libc::AF_INET6 && addrs.is_empty() && flags & libc::AI_V4MAPPED != 0 {
        if let Ok(reply) = client.ask(name, TYPE_A) {
            let (canon, a) = wire::addresses(&reply, name);
            canonical.get_or_insert(canon);
            addrs.extend(a.into_iter().map(|a| match a {
                IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                v6 => v6,
            }));
        }
    }
    if addrs.is_empty() {
        return Err(fail);
    }
    // Reachable destinations first (the kernel has a route), as RFC 6724
    // sorting puts them; the order within each kind is the server's.
    addrs.sort_by_key(|a| !reachable(*a));
    Ok(Found {
        canonical: canonical.unwrap_or_else(|| name.to_string()),
        addrs,
    })
}

/// Whether the kernel has a route to `a` (a UDP connect sends nothing).
fn reachable(a: IpAddr) -> bool {
    let family = if a.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let Ok(fd) = lkl::syscall::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) else {
        return true;
    };
    let addr = match a {
        IpAddr::V4(v) => lkl::syscall::SockAddr::v4(v, 9),
        IpAddr::V6(v) => lkl::syscall::SockAddr::v6(v, 9),
    };
    let ok = lkl::syscall::connect(fd, &addr).is_ok();
    let _ = lkl::syscall::close(fd);
    ok
}

/// # Safety
/// A NUL-terminated string or null.
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

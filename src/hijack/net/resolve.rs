//! Name resolution through the kernel. glibc's resolver sends its queries
//! through internal socket calls no preload library sees, so a hijacked
//! program would ask the host's DNS over the host's network. With a
//! `nameserver` in the config, these functions answer instead: numeric
//! addresses, then the host's `/etc/hosts`, then the nameservers over
//! kernel sockets (`lkl::dns`). Without one, every call goes to glibc.
//!
//! Memory: each `addrinfo` we return is one `malloc` block holding the
//! struct and its socket address, and `ai_canonname` a `malloc`ed string,
//! which is glibc's own layout. So one `freeaddrinfo` (ours, which frees
//! each node and its name with the process's `free`) releases lists from
//! either our `getaddrinfo` or glibc's, and the program cannot tell them
//! apart.

use std::ffi::{c_char, c_int, CStr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};

use lkl::dns::files;
use lkl::dns::wire::{self, TYPE_A, TYPE_AAAA};
use lkl::dns::{Client, LookupError};

use crate::hijack::host::libc_fn;
use crate::hijack::lifecycle::{active, diag};

/// glibc's value (not in the libc crate).
const EAI_ADDRFAMILY: c_int = -9;

/// The config's `nameserver` list (empty: glibc resolves).
static NAMESERVERS: OnceLock<Vec<IpAddr>> = OnceLock::new();

/// Records the config's `nameserver` list (once, from init).
pub fn set_nameservers(servers: Vec<IpAddr>) {
    let _ = NAMESERVERS.set(servers);
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
    fn __h_errno_location() -> *mut c_int;
}

/// Does the kernel have a usable address of this family (AI_ADDRCONFIG)?
/// IPv4: a non-loopback address in SIOCGIFCONF. IPv6: a route towards a
/// global address (a UDP connect sends nothing).
fn configured(family: c_int) -> bool {
    if family == libc::AF_INET {
        return crate::hijack::net::ifaddrs::has_ipv4().unwrap_or(true);
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

/// Socket type and protocol pairs a service resolves for.
fn sock_types(hint_type: c_int, hint_proto: c_int, named_service: bool) -> Vec<(c_int, c_int)> {
    let all = [
        (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        (libc::SOCK_RAW, 0),
    ];
    all.iter()
        .filter(|(t, _)| hint_type == 0 || *t == hint_type)
        // A service name means nothing to a raw socket.
        .filter(|(t, _)| !(named_service && *t == libc::SOCK_RAW && hint_type == 0))
        .filter(|(t, p)| hint_proto == 0 || *p == hint_proto || *t == libc::SOCK_RAW)
        .map(|&(t, p)| {
            if t == libc::SOCK_RAW {
                (t, hint_proto)
            } else {
                (t, p)
            }
        })
        .collect()
}

/// The port of `service` for socket type `ty`; None if it has none.
fn service_port(service: &str, ty: c_int, numeric_only: bool) -> Result<Option<u16>, c_int> {
    if let Ok(p) = service.parse::<u16>() {
        return Ok(Some(p));
    }
    if numeric_only {
        return Err(libc::EAI_NONAME);
    }
    let proto = match ty {
        libc::SOCK_STREAM => "tcp",
        libc::SOCK_DGRAM => "udp",
        _ => return Err(libc::EAI_SERVICE),
    };
    Ok(files::service_port(
        &read_host_file("/etc/services"),
        service,
        proto,
    ))
}

/// One list node: the addrinfo and its sockaddr in one malloc block.
fn node(
    addr: IpAddr,
    port: u16,
    ty: c_int,
    proto: c_int,
    flags: c_int,
) -> Option<*mut libc::addrinfo> {
    let size = std::mem::size_of::<libc::addrinfo>() + std::mem::size_of::<libc::sockaddr_in6>();
    // SAFETY: a fresh block of `size` bytes, zeroed below.
    let block = unsafe { libc::calloc(1, size) } as *mut libc::addrinfo;
    if block.is_null() {
        return None;
    }
    // SAFETY: the sockaddr area follows the struct inside the block; both
    // are 8-byte aligned (addrinfo's size is a multiple of 8).
    unsafe {
        let sa = block.add(1) as *mut u8;
        let ai = &mut *block;
        ai.ai_flags = flags;
        ai.ai_socktype = ty;
        ai.ai_protocol = proto;
        ai.ai_addr = sa.cast();
        match addr {
            IpAddr::V4(v4) => {
                let sin = &mut *(sa as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as u16;
                sin.sin_port = port.to_be();
                sin.sin_addr.s_addr = u32::from(v4).to_be();
                ai.ai_family = libc::AF_INET;
                ai.ai_addrlen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
            IpAddr::V6(v6) => {
                let sin6 = &mut *(sa as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as u16;
                sin6.sin6_port = port.to_be();
                sin6.sin6_addr.s6_addr = v6.octets();
                ai.ai_family = libc::AF_INET6;
                ai.ai_addrlen = std::mem::size_of::<libc::sockaddr_in6>() as u32;
            }
        }
    }
    Some(block)
}

/// A malloc'ed copy of `s` (freed by freeaddrinfo with `free`).
fn malloc_str(s: &str) -> *mut c_char {
    // SAFETY: s.len()+1 bytes, written below.
    let p = unsafe { libc::malloc(s.len() + 1) } as *mut u8;
    if !p.is_null() {
        // SAFETY: the block holds the bytes and the NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            *p.add(s.len()) = 0;
        }
    }
    p.cast()
}

const KNOWN_AI_FLAGS: c_int = libc::AI_PASSIVE
    | libc::AI_CANONNAME
    | libc::AI_NUMERICHOST
    | libc::AI_V4MAPPED
    | libc::AI_ALL
    | libc::AI_ADDRCONFIG
    | libc::AI_NUMERICSERV
    | 0x0080 // AI_IDN
    | 0x0100 // AI_CANONIDN
    ;

fn our_getaddrinfo(
    client: &Client,
    node_name: Option<&str>,
    service: Option<&str>,
    hints: Option<&libc::addrinfo>,
) -> Result<*mut libc::addrinfo, c_int> {
    let (flags, family, hty, hproto) = hints.map_or((0, libc::AF_UNSPEC, 0, 0), |h| {
        (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol)
    });
    if flags & !KNOWN_AI_FLAGS != 0 || (flags & libc::AI_CANONNAME != 0 && node_name.is_none()) {
        return Err(libc::EAI_BADFLAGS);
    }
    if ![libc::AF_UNSPEC, libc::AF_INET, libc::AF_INET6].contains(&family) {
        return Err(libc::EAI_FAMILY);
    }
    if ![0, libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_RAW].contains(&hty) {
        return Err(libc::EAI_SOCKTYPE);
    }
    if node_name.is_none() && service.is_none() {
        return Err(libc::EAI_NONAME);
    }
    let named_service = service.is_some_and(|s| s.parse::<u16>().is_err());
    if named_service && hty == libc::SOCK_RAW {
        return Err(libc::EAI_SERVICE);
    }
    let numeric_serv = flags & libc::AI_NUMERICSERV != 0;
    let mut types = Vec::new();
    for (t, p) in sock_types(hty, hproto, named_service) {
        let port = match service {
            None => 0,
            Some(s) => match service_port(s, t, numeric_serv)? {
                Some(port) => port,
                None => continue,
            },
        };
        types.push((t, p, port));
    }
    if types.is_empty() {
        return Err(libc::EAI_SERVICE);
    }
    let found = match node_name {
        Some(n) => resolve(client, n, family, flags).map_err(Fail::eai)?,
        None => {
            let passive = flags & libc::AI_PASSIVE != 0;
            let v6 = if passive {
                Ipv6Addr::UNSPECIFIED
            } else {
                Ipv6Addr::LOCALHOST
            };
            let v4 = if passive {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::LOCALHOST
            };
            let addrs = [IpAddr::V6(v6), IpAddr::V4(v4)]
                .into_iter()
                .filter(|a| wants(family, a))
                .collect();
            Found {
                canonical: String::new(),
                addrs,
            }
        }
    };
    let mut head: *mut libc::addrinfo = std::ptr::null_mut();
    let mut tail: *mut *mut libc::addrinfo = &mut head;
    for addr in &found.addrs {
        for &(t, p, port) in &types {
            let Some(n) = node(*addr, port, t, p, flags) else {
                freeaddrinfo(head);
                return Err(libc::EAI_MEMORY);
            };
            // SAFETY: `tail` points at the last node's ai_next (or head).
            unsafe {
                *tail = n;
                tail = &mut (*n).ai_next;
            }
        }
    }
    if flags & libc::AI_CANONNAME != 0 && !head.is_null() {
        let c = malloc_str(&found.canonical);
        if c.is_null() {
            freeaddrinfo(head);
            return Err(libc::EAI_MEMORY);
        }
        // SAFETY: head is our first node.
        unsafe { (*head).ai_canonname = c };
    }
    Ok(head)
}

/// # Safety
/// libc's contract for `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    let Some(client) = client() else {
        return match libc_fn!(
            getaddrinfo,
            fn(
                *const c_char,
                *const c_char,
                *const libc::addrinfo,
                *mut *mut libc::addrinfo,
            ) -> c_int
        ) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(node, service, hints, res) },
            None => libc::EAI_SYSTEM,
        };
    };
    if res.is_null() {
        return libc::EAI_SYSTEM;
    }
    // SAFETY: the program's strings and hints, or null.
    let (n, s, h) = unsafe { (cstr(node), cstr(service), hints.as_ref()) };
    if (!node.is_null() && n.is_none()) || (!service.is_null() && s.is_none()) {
        return libc::EAI_NONAME;
    }
    match our_getaddrinfo(&client, n, s, h) {
        Ok(list) => {
            // SAFETY: the program's result pointer.
            unsafe { *res = list };
            0
        }
        Err(e) => e,
    }
}

/// Frees a list from our getaddrinfo or glibc's: both allocate one block
/// per node (with its address) and a separate canonical name.
///
/// # Safety
/// libc's contract for `freeaddrinfo`.
#[no_mangle]
pub extern "C" fn freeaddrinfo(mut ai: *mut libc::addrinfo) {
    while !ai.is_null() {
        // SAFETY: a node of a getaddrinfo list; read next before freeing.
        unsafe {
            let next = (*ai).ai_next;
            libc::free((*ai).ai_canonname.cast());
            libc::free(ai.cast());
            ai = next;
        }
    }
}

/// # Safety
/// None: any code is answered.
#[no_mangle]
pub extern "C" fn gai_strerror(code: c_int) -> *const c_char {
    let s: &'static [u8] = match code {
        0 => b"Success\0",
        libc::EAI_BADFLAGS => b"Bad value for ai_flags\0",
        libc::EAI_NONAME => b"Name or service not known\0",
        libc::EAI_AGAIN => b"Temporary failure in name resolution\0",
        libc::EAI_FAIL => b"Non-recoverable failure in name resolution\0",
        libc::EAI_NODATA => b"No address associated with hostname\0",
        libc::EAI_FAMILY => b"ai_family not supported\0",
        libc::EAI_SOCKTYPE => b"ai_socktype not supported\0",
        libc::EAI_SERVICE => b"Servname not supported for ai_socktype\0",
        EAI_ADDRFAMILY => b"Address family for hostname not supported\0",
        libc::EAI_MEMORY => b"Memory allocation failure\0",
        libc::EAI_SYSTEM => b"System error\0",
        libc::EAI_OVERFLOW => b"Result too large for supplied buffer\0",
        _ => b"Unknown error\0",
    };
    s.as_ptr().cast()
}

/// Copies `s` and a NUL into the program's buffer.
fn put(s: &str, buf: *mut c_char, len: libc::socklen_t) -> Result<(), c_int> {
    if s.len() + 1 > len as usize {
        return Err(libc::EAI_OVERFLOW);
    }
    // SAFETY: the buffer holds `len` bytes, enough for s and the NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

fn our_getnameinfo(
    client: &Client,
    addr: IpAddr,
    port: u16,
    scope: u32,
    flags: c_int,
    host: Option<(*mut c_char, libc::socklen_t)>,
    serv: Option<(*mut c_char, libc::socklen_t)>,
) -> Result<(), c_int> {
    if let Some((buf, len)) = host {
        let mut name = None;
        if flags & libc::NI_NUMERICHOST == 0 {
            name = files::hosts_name(&read_host_file("/etc/hosts"), addr);
            if name.is_none() {
                let q = wire::reverse_name(addr);
                match client.ask(&q, wire::TYPE_PTR) {
                    Ok(r) => name = wire::ptr_name(&r, &q),
                    Err(LookupError::Failed(_)) if flags & libc::NI_NAMEREQD != 0 => {
                        return Err(libc::EAI_AGAIN)
                    }
                    Err(_) => {}
                }
            }
            if name.is_none() && flags & libc::NI_NAMEREQD != 0 {
                return Err(libc::EAI_NONAME);
            }
        }
        let text = match name {
            Some(mut n) => {
                if flags & libc::NI_NOFQDN != 0 {
                    if let Some(i) = n.find('.') {
                        n.truncate(i);
                    }
                }
                n
            }
            None if scope != 0 => format!("{addr}%{scope}"),
            None => addr.to_string(),
        };
        put(&text, buf, len)?;
    }
    if let Some((buf, len)) = serv {
        let proto = if flags & libc::NI_DGRAM != 0 {
            "udp"
        } else {
            "tcp"
        };
        let name = (flags & libc::NI_NUMERICSERV == 0)
            .then(|| files::service_name(&read_host_file("/etc/services"), port, proto))
            .flatten();
        put(&name.unwrap_or_else(|| port.to_string()), buf, len)?;
    }
    Ok(())
}

/// # Safety
/// libc's contract for `getnameinfo`.
#[no_mangle]
pub unsafe extern "C" fn getnameinfo(
    sa: *const libc::sockaddr,
    salen: libc::socklen_t,
    host: *mut c_char,
    hostlen: libc::socklen_t,
    serv: *mut c_char,
    servlen: libc::socklen_t,
    flags: c_int,
) -> c_int {
    let Some(client) = client() else {
        return match libc_fn!(
            getnameinfo,
            fn(
                *const libc::sockaddr,
                libc::socklen_t,
                *mut c_char,
                libc::socklen_t,
                *mut c_char,
                libc::socklen_t,
                c_int,
            ) -> c_int
        ) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(sa, salen, host, hostlen, serv, servlen, flags) },
            None => libc::EAI_SYSTEM,
        };
    };
    if sa.is_null() || (salen as usize) < 2 {
        return libc::EAI_FAMILY;
    }
    // SAFETY: the program's socket address of `salen` bytes; its family
    // decides which layout is read, after the length check.
    let (addr, port, scope) = unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET if salen as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let s = &*(sa as *const libc::sockaddr_in);
                (
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr))),
                    u16::from_be(s.sin_port),
                    0,
                )
            }
            libc::AF_INET6 if salen as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let s = &*(sa as *const libc::sockaddr_in6);
                (
                    IpAddr::V6(Ipv6Addr::from(s.sin6_addr.s6_addr)),
                    u16::from_be(s.sin6_port),
                    s.sin6_scope_id,
                )
            }
            _ => return libc::EAI_FAMILY,
        }
    };
    let host = (!host.is_null() && hostlen > 0).then_some((host, hostlen));
    let serv = (!serv.is_null() && servlen > 0).then_some((serv, servlen));
    if host.is_none() && serv.is_none() {
        return libc::EAI_NONAME;
    }
    match our_getnameinfo(&client, addr, port, scope, flags, host, serv) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// Lays out a hostent for `name` in `buf`: the name, an empty alias list
/// and the address list, pointers 8-byte aligned. Err(ERANGE) if short.
///
/// # Safety
/// `buf` holds `buflen` writable bytes; `ret` is writable.
unsafe fn fill_hostent(
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: usize,
    name: &str,
    family: c_int,
    addrs: &[IpAddr],
) -> Result<(), c_int> {
    let alen = if family == libc::AF_INET6 { 16 } else { 4 };
    let base = buf as usize;
    let start = (base + 7) & !7;
    let ptrs = 8 * (1 + addrs.len() + 1); // aliases: [NULL]; addrs: [.., NULL]
    let need = (start - base) + ptrs + alen * addrs.len() + name.len() + 1;
    if need > buflen {
        return Err(libc::ERANGE);
    }
    // SAFETY: every write below lies inside buf[0..need] (checked above);
    // pointer slots are 8-byte aligned.
    unsafe {
        let aliases = start as *mut *mut c_char;
        *aliases = std::ptr::null_mut();
        let list = aliases.add(1);
        let mut data = (start + ptrs) as *mut u8;
        for (i, a) in addrs.iter().enumerate() {
            match a {
                IpAddr::V4(v) => std::ptr::copy_nonoverlapping(v.octets().as_ptr(), data, 4),
                IpAddr::V6(v) => std::ptr::copy_nonoverlapping(v.octets().as_ptr(), data, 16),
            }
            *list.add(i) = data.cast();
            data = data.add(alen);
        }
        *list.add(addrs.len()) = std::ptr::null_mut();
        std::ptr::copy_nonoverlapping(name.as_ptr(), data, name.len());
        *data.add(name.len()) = 0;
        (*ret).h_name = data.cast();
        (*ret).h_aliases = aliases;
        (*ret).h_addrtype = family;
        (*ret).h_length = alen as c_int;
        (*ret).h_addr_list = list;
    }
    Ok(())
}

/// The addresses of `name` in one family, for the gethostbyname family.
fn host_lookup(client: &Client, name: &str, family: c_int) -> Result<Found, Fail> {
    resolve(client, name, family, 0)
}

/// # Safety
/// glibc's contract for `gethostbyname2_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut libc::hostent,
    h_errnop: *mut c_int,
) -> c_int {
    let Some(client) = client() else {
        return match libc_fn!(
            gethostbyname2_r,
            fn(
                *const c_char,
                c_int,
                *mut libc::hostent,
                *mut c_char,
                usize,
                *mut *mut libc::hostent,
                *mut c_int,
            ) -> c_int
        ) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(name, af, ret, buf, buflen, result, h_errnop) },
            None => libc::ENOSYS,
        };
    };
    if result.is_null() {
        return libc::EINVAL;
    }
    // SAFETY: the program's result pointer.
    unsafe { *result = std::ptr::null_mut() };
    let set_h = |v: c_int| {
        if !h_errnop.is_null() {
            // SAFETY: the program's h_errno slot.
            unsafe { *h_errnop = v };
        }
    };
    if af != libc::AF_INET && af != libc::AF_INET6 {
        set_h(3); // NO_RECOVERY
        return libc::EAFNOSUPPORT;
    }
    // SAFETY: the program's NUL-terminated name.
    let Some(n) = (unsafe { cstr(name) }) else {
        set_h(1);
        return libc::ENOENT;
    };
    match host_lookup(&client, n, af) {
        Ok(found) => {
            // SAFETY: the program's hostent and buffer of `buflen` bytes.
            match unsafe { fill_hostent(ret, buf, buflen, &found.canonical, af, &found.addrs) } {
                Ok(()) => {
                    // SAFETY: the program's result pointer.
                    unsafe { *result = ret };
                    set_h(0);
                    0
                }
                Err(e) => {
                    set_h(-1); // NETDB_INTERNAL
                    e
                }
            }
        }
        Err(f) => {
            set_h(f.h_errno());
            if f == Fail::Again {
                libc::EAGAIN
            } else {
                libc::ENOENT
            }
        }
    }
}

/// # Safety
/// glibc's contract for `gethostbyname_r`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut libc::hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if client().is_none() {
        return match libc_fn!(
            gethostbyname_r,
            fn(
                *const c_char,
                *mut libc::hostent,
                *mut c_char,
                usize,
                *mut *mut libc::hostent,
                *mut c_int,
            ) -> c_int
        ) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(name, ret, buf, buflen, result, h_errnop) },
            None => libc::ENOSYS,
        };
    }
    // SAFETY: same contract, IPv4.
    unsafe { gethostbyname2_r(name, libc::AF_INET, ret, buf, buflen, result, h_errnop) }
}

/// The static result gethostbyname and gethostbyname2 return, as glibc's
/// (not thread-safe by contract; the lock only keeps our filling whole).
struct Static {
    ent: libc::hostent,
    buf: [u64; 1024],
}

// SAFETY: only touched under the mutex below; the raw pointers point into
// the same static.
unsafe impl Send for Static {}

static STATIC: Mutex<Static> = Mutex::new(Static {
    ent: libc::hostent {
        h_name: std::ptr::null_mut(),
        h_aliases: std::ptr::null_mut(),
        h_addrtype: 0,
        h_length: 0,
        h_addr_list: std::ptr::null_mut(),
    },
    buf: [0; 1024],
});

/// # Safety
/// libc's contract for `gethostbyname2`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut libc::hostent {
    if client().is_none() {
        return match libc_fn!(
            gethostbyname2,
            fn(*const c_char, c_int) -> *mut libc::hostent
        ) {
            // SAFETY: glibc's function with the program's arguments.
            Some(f) => unsafe { f(name, af) },
            None => std::ptr::null_mut(),
        };
    }
    let mut st = STATIC.lock().unwrap_or_else(|e| e.into_inner());
    let st = &mut *st;
    let mut result = std::ptr::null_mut();
    let mut herr = 0;
    let ent: *mut libc::hostent = &mut st.ent;
    // SAFETY: our static hostent and buffer.
    unsafe {
        gethostbyname2_r(
            name,
            af,
            ent,
            st.buf.as_mut_ptr().cast(),
            std::mem::size_of_val(&st.buf),
            &mut result,
            &mut herr,
        );
        *__h_errno_location() = herr;
    }
    result
}

/// # Safety
/// libc's contract for `gethostbyname`.
#[no_mangle]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut libc::hostent {
    if client().is_none() {
        return match libc_fn!(gethostbyname, fn(*const c_char) -> *mut libc::hostent) {
            // SAFETY: glibc's function with the program's argument.
            Some(f) => unsafe { f(name) },
            None => std::ptr::null_mut(),
        };
    }
    // SAFETY: same contract, IPv4.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

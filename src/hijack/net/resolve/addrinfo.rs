//! getaddrinfo, freeaddrinfo and gai_strerror. Each `addrinfo` we return
//! is one `malloc` block holding the struct and its socket address, and
//! `ai_canonname` a `malloc`ed string, which is glibc's own layout. So one
//! `freeaddrinfo` (ours, which frees each node and its name with the
//! process's `free`) releases lists from either our `getaddrinfo` or
//! glibc's, and the program cannot tell them apart.

use std::ffi::{c_char, c_int};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lkl::dns::files;
use lkl::dns::Client;

use super::{client, cstr, read_host_file, resolve, wants, Fail, Found, EAI_ADDRFAMILY};
use crate::hijack::host::libc_fn;

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
    // SAFETY: calloc has no preconditions; the block comes zeroed.
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
            Some(f) => crate::hijack::tier::gate::allowed(|| {
                // SAFETY: glibc's function with the program's arguments.
                unsafe { f(node, service, hints, res) }
            }),
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

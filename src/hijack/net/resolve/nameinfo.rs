//! getnameinfo: an address's name from /etc/hosts, then a PTR query to the
//! config's nameservers; a port's name from /etc/services.

use std::ffi::{c_char, c_int};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lkl::dns::files;
use lkl::dns::wire;
use lkl::dns::{Client, LookupError};

use super::{client, read_host_file};
use crate::hijack::host::libc_fn;

/// Copies `s` and a NUL into the program's buffer.
fn put_str(s: &str, buf: *mut c_char, len: libc::socklen_t) -> Result<(), c_int> {
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
        put_str(&text, buf, len)?;
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
        put_str(&name.unwrap_or_else(|| port.to_string()), buf, len)?;
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe {
                f(sa, salen, host, hostlen, serv, servlen, flags)
            }),
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

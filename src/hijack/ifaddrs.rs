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

//! The kernel's interfaces by name and index (if_nametoindex,
//! if_indextoname, if_nameindex) and its IPv4 addresses, asked with the
//! `struct ifreq` ioctls on a kernel socket (the host's would describe the
//! wrong network). Before boot, glibc answers.

use std::ffi::{c_char, c_uint};

use lkl::syscall::{self as sys, nr, raw, Errno};

use crate::hijack::host::{libc_fn, set_errno};
use crate::hijack::lifecycle::active;

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

/// # Safety
/// libc's contract for `if_nametoindex`.
#[no_mangle]
pub unsafe extern "C" fn if_nametoindex(name: *const c_char) -> c_uint {
    if !active() {
        return match libc_fn!(if_nametoindex, fn(*const c_char) -> c_uint) {
            // SAFETY: glibc's function with the program's argument.
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f(name) }),
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f(index, buf) }),
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f() }),
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

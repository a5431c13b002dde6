//! The gethostbyname family (gethostbyname, gethostbyname2 and their
//! reentrant `_r` forms): one family's addresses laid out in glibc's
//! `struct hostent`, in the caller's buffer or, for the non-reentrant
//! forms, in a static one.

use std::ffi::{c_char, c_int};
use std::net::IpAddr;
use std::sync::Mutex;

use lkl::dns::Client;

use super::{client, cstr, resolve, Fail, Found};
use crate::hijack::host::libc_fn;

extern "C" {
    fn __h_errno_location() -> *mut c_int;
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe {
                f(name, af, ret, buf, buflen, result, h_errnop)
            }),
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe {
                f(name, ret, buf, buflen, result, h_errnop)
            }),
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f(name, af) }),
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
            Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f(name) }),
            None => std::ptr::null_mut(),
        };
    }
    // SAFETY: same contract, IPv4.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

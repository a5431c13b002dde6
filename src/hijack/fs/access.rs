//! Questions about a path that do not open it: `access`, `faccessat`,
//! `euidaccess`/`eaccess`, and `readlink`/`readlinkat` with glibc's
//! fortified forms.

use std::ffi::{c_char, c_int};

use libc::AT_FDCWD;
use lkl::syscall::nr;

use crate::hijack::call::{arg, fortify};
use crate::hijack::fs::paths::{kcall_path, route, Route};
use crate::hijack::host::libc_fn;

fn access_at(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> Option<c_int> {
    match route(dirfd, path) {
        Route::Kernel(d, k) => {
            Some(kcall_path(nr::FACCESSAT2, d, &k, [mode.into(), flags.into(), 0, 0]) as c_int)
        }
        _ => None,
    }
}

/// # Safety
/// libc's contract for `access`.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    let r = route(AT_FDCWD, path);
    if let Route::Kernel(d, k) = &r {
        return kcall_path(nr::FACCESSAT2, *d, k, [mode.into(), 0, 0, 0]) as c_int;
    }
    libc_fn!(access, fn(*const c_char, c_int) -> c_int; r.host_path(path), mode)
}

/// # Safety
/// libc's contract for `faccessat`.
#[no_mangle]
pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    if let Some(r) = access_at(dirfd, path, mode, flags) {
        return r;
    }
    let r = route(dirfd, path);
    libc_fn!(faccessat, fn(c_int, *const c_char, c_int, c_int) -> c_int; dirfd, r.host_path(path), mode, flags)
}

/// # Safety
/// libc's contract for `euidaccess`.
#[no_mangle]
pub unsafe extern "C" fn euidaccess(path: *const c_char, mode: c_int) -> c_int {
    if let Some(r) = access_at(AT_FDCWD, path, mode, libc::AT_EACCESS) {
        return r;
    }
    let r = route(AT_FDCWD, path);
    libc_fn!(euidaccess, fn(*const c_char, c_int) -> c_int; r.host_path(path), mode)
}

/// # Safety
/// libc's contract for `eaccess`.
#[no_mangle]
pub unsafe extern "C" fn eaccess(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: same contract.
    unsafe { euidaccess(path, mode) }
}

/// # Safety
/// libc's contract for `readlinkat`.
#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> isize {
    match route(dirfd, path) {
        Route::Kernel(d, k) => {
            kcall_path(nr::READLINKAT, d, &k, [arg!(buf), len as i64, 0, 0]) as isize
        }
        r => {
            libc_fn!(readlinkat, fn(c_int, *const c_char, *mut c_char, usize) -> isize; dirfd, r.host_path(path), buf, len)
        }
    }
}

/// # Safety
/// libc's contract for `readlink`.
#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, len: usize) -> isize {
    // SAFETY: same contract.
    unsafe { readlinkat(AT_FDCWD, path, buf, len) }
}

/// # Safety
/// glibc's contract for `__readlink_chk`.
#[no_mangle]
pub unsafe extern "C" fn __readlink_chk(
    path: *const c_char,
    buf: *mut c_char,
    len: usize,
    buflen: usize,
) -> isize {
    // SAFETY: same contract, relative to the working directory.
    unsafe { __readlinkat_chk(AT_FDCWD, path, buf, len, buflen) }
}

/// # Safety
/// glibc's contract for `__readlinkat_chk`.
#[no_mangle]
pub unsafe extern "C" fn __readlinkat_chk(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    len: usize,
    buflen: usize,
) -> isize {
    fortify(len, buflen);
    // SAFETY: same contract once the length is checked.
    unsafe { readlinkat(dirfd, path, buf, len) }
}

//! A file's attributes by path or descriptor: mode (chmod), owner
//! (chown), times (utimensat and its older timeval and utimbuf forms), and
//! size by path (truncate).

use std::ffi::{c_char, c_int};

use libc::AT_FDCWD;
use lkl::syscall::nr;

use crate::hijack::call::{arg, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::paths::{kcall_path, route, Route};
use crate::hijack::host::libc_fn;

/// # Safety
/// libc's contract for `fchmodat`.
#[no_mangle]
pub unsafe extern "C" fn fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: libc::mode_t,
    flags: c_int,
) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => {
            let (n, f) = if flags == 0 {
                (nr::FCHMODAT, 0)
            } else {
                (nr::FCHMODAT2, flags.into())
            };
            kcall_path(n, d, &k, [mode.into(), f, 0, 0]) as c_int
        }
        r => {
            libc_fn!(fchmodat, fn(c_int, *const c_char, libc::mode_t, c_int) -> c_int; dirfd, r.host_path(path), mode, flags)
        }
    }
}

/// # Safety
/// libc's contract for `chmod`.
#[no_mangle]
pub unsafe extern "C" fn chmod(path: *const c_char, mode: libc::mode_t) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => kcall_path(nr::FCHMODAT, d, &k, [mode.into(), 0, 0, 0]) as c_int,
        r => libc_fn!(chmod, fn(*const c_char, libc::mode_t) -> c_int; r.host_path(path), mode),
    }
}

/// # Safety
/// libc's contract for `fchownat`.
#[no_mangle]
pub unsafe extern "C" fn fchownat(
    dirfd: c_int,
    path: *const c_char,
    uid: libc::uid_t,
    gid: libc::gid_t,
    flags: c_int,
) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall_path(
            nr::FCHOWNAT,
            d,
            &k,
            [uid.into(), gid.into(), flags.into(), 0],
        ) as c_int,
        r => libc_fn!(fchownat, fn(c_int, *const c_char, libc::uid_t, libc::gid_t, c_int) -> c_int;
            dirfd, r.host_path(path), uid, gid, flags),
    }
}

/// # Safety
/// libc's contract for `chown`.
#[no_mangle]
pub unsafe extern "C" fn chown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => {
            kcall_path(nr::FCHOWNAT, d, &k, [uid.into(), gid.into(), 0, 0]) as c_int
        }
        r => {
            libc_fn!(chown, fn(*const c_char, libc::uid_t, libc::gid_t) -> c_int; r.host_path(path), uid, gid)
        }
    }
}

/// # Safety
/// libc's contract for `lchown`.
#[no_mangle]
pub unsafe extern "C" fn lchown(path: *const c_char, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => kcall_path(
            nr::FCHOWNAT,
            d,
            &k,
            [uid.into(), gid.into(), libc::AT_SYMLINK_NOFOLLOW.into(), 0],
        ) as c_int,
        r => {
            libc_fn!(lchown, fn(*const c_char, libc::uid_t, libc::gid_t) -> c_int; r.host_path(path), uid, gid)
        }
    }
}

/// `utimensat` in the kernel with host-side times (null: now).
fn k_utimens(d: i32, path: *const c_char, times: *const libc::timespec, flags: c_int) -> c_int {
    kcall(
        nr::UTIMENSAT,
        [d.into(), arg!(path), arg!(times), flags.into(), 0, 0],
    ) as c_int
}

/// # Safety
/// libc's contract for `utimensat`.
#[no_mangle]
pub unsafe extern "C" fn utimensat(
    dirfd: c_int,
    path: *const c_char,
    times: *const libc::timespec,
    flags: c_int,
) -> c_int {
    if path.is_null() {
        // Linux's utimensat(fd, NULL, ...) is futimens.
        if let Some(k) = fdtable::kernel_fd(dirfd) {
            return k_utimens(k, std::ptr::null(), times, flags);
        }
    }
    match route(dirfd, path) {
        Route::Kernel(d, k) => k_utimens(d, k.as_ptr(), times, flags),
        r => libc_fn!(utimensat, fn(c_int, *const c_char, *const libc::timespec, c_int) -> c_int;
            dirfd, r.host_path(path), times, flags),
    }
}

/// # Safety
/// libc's contract for `futimens`.
#[no_mangle]
pub unsafe extern "C" fn futimens(fd: c_int, times: *const libc::timespec) -> c_int {
    if let Some(k) = fdtable::kernel_fd(fd) {
        return k_utimens(k, std::ptr::null(), times, 0);
    }
    libc_fn!(futimens, fn(c_int, *const libc::timespec) -> c_int; fd, times)
}

/// Two timevals as two timespecs (null stays null: now).
fn tv_to_ts(tv: *const libc::timeval) -> Option<[libc::timespec; 2]> {
    if tv.is_null() {
        return None;
    }
    // SAFETY: the program passes two timevals.
    let t = unsafe { std::slice::from_raw_parts(tv, 2) };
    Some([0, 1].map(|i| libc::timespec {
        tv_sec: t[i].tv_sec,
        tv_nsec: t[i].tv_usec * 1000,
    }))
}

fn ts_ptr(ts: &Option<[libc::timespec; 2]>) -> *const libc::timespec {
    ts.as_ref().map_or(std::ptr::null(), |t| t.as_ptr())
}

/// # Safety
/// libc's contract for `utimes`.
#[no_mangle]
pub unsafe extern "C" fn utimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => {
            let ts = tv_to_ts(tv);
            k_utimens(d, k.as_ptr(), ts_ptr(&ts), 0)
        }
        r => {
            libc_fn!(utimes, fn(*const c_char, *const libc::timeval) -> c_int; r.host_path(path), tv)
        }
    }
}

/// # Safety
/// libc's contract for `lutimes`.
#[no_mangle]
pub unsafe extern "C" fn lutimes(path: *const c_char, tv: *const libc::timeval) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => {
            let ts = tv_to_ts(tv);
            k_utimens(d, k.as_ptr(), ts_ptr(&ts), libc::AT_SYMLINK_NOFOLLOW)
        }
        r => {
            libc_fn!(lutimes, fn(*const c_char, *const libc::timeval) -> c_int; r.host_path(path), tv)
        }
    }
}

/// # Safety
/// libc's contract for `futimes`.
#[no_mangle]
pub unsafe extern "C" fn futimes(fd: c_int, tv: *const libc::timeval) -> c_int {
    if let Some(k) = fdtable::kernel_fd(fd) {
        let ts = tv_to_ts(tv);
        return k_utimens(k, std::ptr::null(), ts_ptr(&ts), 0);
    }
    libc_fn!(futimes, fn(c_int, *const libc::timeval) -> c_int; fd, tv)
}

/// # Safety
/// libc's contract for `utime`.
#[no_mangle]
pub unsafe extern "C" fn utime(path: *const c_char, times: *const libc::utimbuf) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => {
            let ts = (!times.is_null()).then(|| {
                // SAFETY: the program's utimbuf.
                let t = unsafe { &*times };
                [t.actime, t.modtime].map(|s| libc::timespec {
                    tv_sec: s,
                    tv_nsec: 0,
                })
            });
            k_utimens(d, k.as_ptr(), ts_ptr(&ts), 0)
        }
        r => {
            libc_fn!(utime, fn(*const c_char, *const libc::utimbuf) -> c_int; r.host_path(path), times)
        }
    }
}

macro_rules! truncate_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, len: i64) -> c_int {
            match route(AT_FDCWD, path) {
                Route::Kernel(_, k) => {
                    kcall(nr::TRUNCATE, [arg!(k.as_ptr()), len, 0, 0, 0, 0]) as c_int
                }
                r => libc_fn!($name, fn(*const c_char, i64) -> c_int; r.host_path(path), len),
            }
        }
    };
}
truncate_hook!(truncate);
truncate_hook!(truncate64);

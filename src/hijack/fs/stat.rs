//! `stat` under all its names: stat, lstat, fstat, fstatat (and their
//! `64` twins), glibc's pre-2.33 `__xstat` family, and statx. The kernel's
//! generic `struct stat` differs from the host's x86_64 one (field order
//! and widths): xlate converts it. `struct statx` and `struct timespec`
//! have one layout (asserted below) and pass through.

use std::ffi::{c_char, c_int, c_uint};

use libc::AT_FDCWD;
use lkl::syscall::{abi, nr};

use crate::hijack::call::{arg, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::paths::{route, Route};
use crate::hijack::host::fail;

// Passed through unchanged.
const _: () = {
    assert!(std::mem::size_of::<libc::statx>() == std::mem::size_of::<abi::Statx>());
    assert!(std::mem::size_of::<libc::timespec>() == std::mem::size_of::<abi::Timespec>());
};

/// The kernel's generic `struct stat` in the host's x86_64 layout
/// (the conversion is xlate's).
fn host_stat(k: &abi::Stat, out: *mut libc::stat) {
    // SAFETY: the program's struct stat (checked non-null by the caller).
    unsafe { out.write_unaligned(lkl::xlate::stat_to_host(k)) };
}

/// `fstatat` in the kernel, into the program's host-layout buffer.
fn kstat(kdir: i32, path: *const c_char, flags: c_int, out: *mut libc::stat) -> c_int {
    if out.is_null() {
        return fail(libc::EFAULT);
    }
    let mut st = abi::Stat::default();
    let r = kcall(
        nr::NEWFSTATAT,
        [
            kdir.into(),
            arg!(path),
            arg!(&mut st as *mut abi::Stat),
            flags.into(),
            0,
            0,
        ],
    );
    if r < 0 {
        return -1;
    }
    host_stat(&st, out);
    0
}

/// `fstatat` on the host (glibc's struct stat is the x86_64 kernel's).
fn host_fstatat(dirfd: c_int, path: *const c_char, out: *mut libc::stat, flags: c_int) -> c_int {
    // SAFETY: the program's path and buffer, as for its own call.
    unsafe { libc::syscall(libc::SYS_newfstatat, dirfd, path, out, flags) as c_int }
}

fn stat_at(dirfd: c_int, path: *const c_char, out: *mut libc::stat, flags: c_int) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kstat(d, k.as_ptr(), flags, out),
        r => host_fstatat(dirfd, r.host_path(path), out, flags),
    }
}

fn fstat_fd(fd: c_int, out: *mut libc::stat) -> c_int {
    if let Some(k) = fdtable::kernel_fd(fd) {
        return kstat(k, c"".as_ptr(), libc::AT_EMPTY_PATH, out);
    }
    // SAFETY: the program's descriptor and buffer.
    unsafe { libc::syscall(libc::SYS_fstat, fd, out) as c_int }
}

macro_rules! stat_hook {
    ($name:ident, $flags:expr) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, out: *mut libc::stat) -> c_int {
            stat_at(AT_FDCWD, path, out, $flags)
        }
    };
}
stat_hook!(stat, 0);
stat_hook!(stat64, 0);
stat_hook!(lstat, libc::AT_SYMLINK_NOFOLLOW);
stat_hook!(lstat64, libc::AT_SYMLINK_NOFOLLOW);

macro_rules! xstat_hook {
    ($name:ident, $flags:expr) => {
        /// # Safety
        /// glibc's (pre-2.33) contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            _ver: c_int,
            path: *const c_char,
            out: *mut libc::stat,
        ) -> c_int {
            stat_at(AT_FDCWD, path, out, $flags)
        }
    };
}
xstat_hook!(__xstat, 0);
xstat_hook!(__xstat64, 0);
xstat_hook!(__lxstat, libc::AT_SYMLINK_NOFOLLOW);
xstat_hook!(__lxstat64, libc::AT_SYMLINK_NOFOLLOW);

/// # Safety
/// libc's contract for `fstat`.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, out: *mut libc::stat) -> c_int {
    fstat_fd(fd, out)
}

/// # Safety
/// libc's contract for `fstat64`.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, out: *mut libc::stat) -> c_int {
    fstat_fd(fd, out)
}

/// # Safety
/// glibc's contract for `__fxstat`.
#[no_mangle]
pub unsafe extern "C" fn __fxstat(_ver: c_int, fd: c_int, out: *mut libc::stat) -> c_int {
    fstat_fd(fd, out)
}

/// # Safety
/// glibc's contract for `__fxstat64`.
#[no_mangle]
pub unsafe extern "C" fn __fxstat64(_ver: c_int, fd: c_int, out: *mut libc::stat) -> c_int {
    fstat_fd(fd, out)
}

/// # Safety
/// libc's contract for `fstatat`.
#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    out: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_at(dirfd, path, out, flags)
}

/// # Safety
/// libc's contract for `fstatat64`.
#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    out: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_at(dirfd, path, out, flags)
}

/// # Safety
/// glibc's contract for `__fxstatat`.
#[no_mangle]
pub unsafe extern "C" fn __fxstatat(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    out: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_at(dirfd, path, out, flags)
}

/// # Safety
/// glibc's contract for `__fxstatat64`.
#[no_mangle]
pub unsafe extern "C" fn __fxstatat64(
    _ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    out: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_at(dirfd, path, out, flags)
}

/// # Safety
/// libc's contract for `statx` (the structure is the same everywhere).
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    out: *mut libc::statx,
) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall(
            nr::STATX,
            [
                d.into(),
                arg!(k.as_ptr()),
                flags.into(),
                mask.into(),
                arg!(out),
                0,
            ],
        ) as c_int,
        // SAFETY: the program's arguments.
        r => unsafe {
            libc::syscall(libc::SYS_statx, dirfd, r.host_path(path), flags, mask, out) as c_int
        },
    }
}

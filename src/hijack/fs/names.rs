//! Calls that make, remove or rename names: mkdir, mknod, mkfifo, unlink,
//! rmdir, remove, rename, link, symlink. A call with two paths keeps to one
//! world: one path on a disk and the other on the host is EXDEV, as across
//! two host file systems.

use std::ffi::{c_char, c_int, c_uint};

use libc::AT_FDCWD;
use lkl::syscall::{nr, raw, Errno};

use crate::hijack::call::{arg, kcall, libc_result};
use crate::hijack::fs::paths::{kcall_path, route, Route};
use crate::hijack::host::{fail, libc_fn};

/// # Safety
/// libc's contract for `mkdirat`.
#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: libc::mode_t) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall_path(nr::MKDIRAT, d, &k, [mode.into(), 0, 0, 0]) as c_int,
        r => {
            libc_fn!(mkdirat, fn(c_int, *const c_char, libc::mode_t) -> c_int; dirfd, r.host_path(path), mode)
        }
    }
}

/// # Safety
/// libc's contract for `mkdir`.
#[no_mangle]
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: libc::mode_t) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => kcall_path(nr::MKDIRAT, d, &k, [mode.into(), 0, 0, 0]) as c_int,
        r => libc_fn!(mkdir, fn(*const c_char, libc::mode_t) -> c_int; r.host_path(path), mode),
    }
}

/// # Safety
/// libc's contract for `mknodat`.
#[no_mangle]
pub unsafe extern "C" fn mknodat(
    dirfd: c_int,
    path: *const c_char,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> c_int {
    match route(dirfd, path) {
        // The kernel's mknod takes the new_encode_dev form; glibc's dev_t
        // is the same encoding for the numbers a file system can hold.
        Route::Kernel(d, k) => {
            kcall_path(nr::MKNODAT, d, &k, [mode.into(), dev as i64, 0, 0]) as c_int
        }
        r => {
            libc_fn!(mknodat, fn(c_int, *const c_char, libc::mode_t, libc::dev_t) -> c_int; dirfd, r.host_path(path), mode, dev)
        }
    }
}

/// # Safety
/// libc's contract for `mknod`.
#[no_mangle]
pub unsafe extern "C" fn mknod(path: *const c_char, mode: libc::mode_t, dev: libc::dev_t) -> c_int {
    // SAFETY: same contract.
    unsafe { mknodat(AT_FDCWD, path, mode, dev) }
}

/// # Safety
/// libc's contract for `mkfifo`.
#[no_mangle]
pub unsafe extern "C" fn mkfifo(path: *const c_char, mode: libc::mode_t) -> c_int {
    // SAFETY: same contract.
    unsafe { mknodat(AT_FDCWD, path, mode | libc::S_IFIFO, 0) }
}

/// # Safety
/// libc's contract for `unlinkat`.
#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall_path(nr::UNLINKAT, d, &k, [flags.into(), 0, 0, 0]) as c_int,
        r => {
            libc_fn!(unlinkat, fn(c_int, *const c_char, c_int) -> c_int; dirfd, r.host_path(path), flags)
        }
    }
}

/// # Safety
/// libc's contract for `unlink`.
#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    // SAFETY: same contract.
    unsafe { unlinkat(AT_FDCWD, path, 0) }
}

/// # Safety
/// libc's contract for `rmdir`.
#[no_mangle]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    // SAFETY: same contract.
    unsafe { unlinkat(AT_FDCWD, path, libc::AT_REMOVEDIR) }
}

/// # Safety
/// libc's contract for `remove` (glibc's own calls unlink/rmdir
/// internally, out of the hooks' reach: served here).
#[no_mangle]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(d, k) => {
            let args = [d.into(), arg!(k.as_ptr()), 0, 0, 0, 0];
            // SAFETY: a NUL-terminated path we own.
            match unsafe { raw(nr::UNLINKAT, args) } {
                Err(Errno::EISDIR) => {
                    kcall_path(nr::UNLINKAT, d, &k, [libc::AT_REMOVEDIR.into(), 0, 0, 0]) as c_int
                }
                r => libc_result(r) as c_int,
            }
        }
        r => libc_fn!(remove, fn(*const c_char) -> c_int; r.host_path(path)),
    }
}

/// Two paths in one call (rename, link): both in the kernel, `nr` with
/// `flags` there; both on the host, `host` with the paths as the host
/// should see them; one in each world, EXDEV.
fn two_paths(
    (od, old): (c_int, *const c_char),
    (nd, new): (c_int, *const c_char),
    (nr, flags): (i64, i64),
    host: impl FnOnce(*const c_char, *const c_char) -> c_int,
) -> c_int {
    match (route(od, old), route(nd, new)) {
        (Route::Kernel(a, x), Route::Kernel(b, y)) => kcall(
            nr,
            [
                a.into(),
                arg!(x.as_ptr()),
                b.into(),
                arg!(y.as_ptr()),
                flags,
                0,
            ],
        ) as c_int,
        (Route::Kernel(..), _) | (_, Route::Kernel(..)) => fail(libc::EXDEV),
        (a, b) => host(a.host_path(old), b.host_path(new)),
    }
}

/// # Safety
/// libc's contract for `renameat2`.
#[no_mangle]
pub unsafe extern "C" fn renameat2(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    two_paths(
        (od, old),
        (nd, new),
        (nr::RENAMEAT2, flags.into()),
        |o, n| libc_fn!(renameat2, fn(c_int, *const c_char, c_int, *const c_char, c_uint) -> c_int; od, o, nd, n, flags),
    )
}

/// # Safety
/// libc's contract for `renameat`.
#[no_mangle]
pub unsafe extern "C" fn renameat(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
) -> c_int {
    two_paths(
        (od, old),
        (nd, new),
        (nr::RENAMEAT2, 0),
        |o, n| libc_fn!(renameat, fn(c_int, *const c_char, c_int, *const c_char) -> c_int; od, o, nd, n),
    )
}

/// # Safety
/// libc's contract for `rename`.
#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    two_paths(
        (AT_FDCWD, old),
        (AT_FDCWD, new),
        (nr::RENAMEAT2, 0),
        |o, n| libc_fn!(rename, fn(*const c_char, *const c_char) -> c_int; o, n),
    )
}

/// # Safety
/// libc's contract for `linkat`.
#[no_mangle]
pub unsafe extern "C" fn linkat(
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    two_paths(
        (od, old),
        (nd, new),
        (nr::LINKAT, flags.into()),
        |o, n| libc_fn!(linkat, fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int; od, o, nd, n, flags),
    )
}

/// # Safety
/// libc's contract for `link`.
#[no_mangle]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    two_paths(
        (AT_FDCWD, old),
        (AT_FDCWD, new),
        (nr::LINKAT, 0),
        |o, n| libc_fn!(link, fn(*const c_char, *const c_char) -> c_int; o, n),
    )
}

/// # Safety
/// libc's contract for `symlinkat`. The link's place decides; its target
/// is stored as written.
#[no_mangle]
pub unsafe extern "C" fn symlinkat(
    target: *const c_char,
    dirfd: c_int,
    path: *const c_char,
) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall(
            nr::SYMLINKAT,
            [arg!(target), d.into(), arg!(k.as_ptr()), 0, 0, 0],
        ) as c_int,
        r => {
            libc_fn!(symlinkat, fn(*const c_char, c_int, *const c_char) -> c_int; target, dirfd, r.host_path(path))
        }
    }
}

/// # Safety
/// libc's contract for `symlink`.
#[no_mangle]
pub unsafe extern "C" fn symlink(target: *const c_char, path: *const c_char) -> c_int {
    // SAFETY: same contract.
    unsafe { symlinkat(target, AT_FDCWD, path) }
}

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
use crate::hijack::fs::paths::{kcall_path, route, Route};
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
    unsafe {
        crate::hijack::host::host_syscall!(libc::SYS_newfstatat, dirfd, path, out, flags) as c_int
    }
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
    unsafe { crate::hijack::host::host_syscall!(libc::SYS_fstat, fd, out) as c_int }
}

/// Defines hooks, one per name, of one C signature, each `$body`: the
/// `64` twins (the same calls on x86_64) and glibc's pre-2.33 `__xstat`
/// family, whose version argument says which `struct stat` (always the
/// x86_64 kernel's here) and is ignored.
macro_rules! stat_hooks {
    ([$($name:ident),+] $args:tt => $body:expr) => {
        $(stat_hooks!(@one $name $args => $body);)+
    };
    (@one $name:ident ($($arg:ident: $ty:ty),*) => $body:expr) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            $body
        }
    };
}

type Path = *const c_char;
type StatBuf = *mut libc::stat;
const NOFOLLOW: c_int = libc::AT_SYMLINK_NOFOLLOW;

stat_hooks!([stat, stat64] (path: Path, out: StatBuf) => stat_at(AT_FDCWD, path, out, 0));
stat_hooks!([lstat, lstat64] (path: Path, out: StatBuf) => stat_at(AT_FDCWD, path, out, NOFOLLOW));
stat_hooks!([fstat, fstat64] (fd: c_int, out: StatBuf) => fstat_fd(fd, out));
stat_hooks!([fstatat, fstatat64] (dirfd: c_int, path: Path, out: StatBuf, flags: c_int)
    => stat_at(dirfd, path, out, flags));
stat_hooks!([__xstat, __xstat64] (_ver: c_int, path: Path, out: StatBuf)
    => stat_at(AT_FDCWD, path, out, 0));
stat_hooks!([__lxstat, __lxstat64] (_ver: c_int, path: Path, out: StatBuf)
    => stat_at(AT_FDCWD, path, out, NOFOLLOW));
stat_hooks!([__fxstat, __fxstat64] (_ver: c_int, fd: c_int, out: StatBuf) => fstat_fd(fd, out));
stat_hooks!([__fxstatat, __fxstatat64] (_ver: c_int, dirfd: c_int, path: Path, out: StatBuf, flags: c_int)
    => stat_at(dirfd, path, out, flags));

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
        Route::Kernel(d, k) => {
            kcall_path(nr::STATX, d, &k, [flags.into(), mask.into(), arg!(out), 0]) as c_int
        }
        // SAFETY: the program's arguments.
        r => unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_statx,
                dirfd,
                r.host_path(path),
                flags,
                mask,
                out
            ) as c_int
        },
    }
}

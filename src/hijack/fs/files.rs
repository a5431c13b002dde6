//! The interposed file calls: a call on a path under a disk's mount point
//! (paths.rs decides) or on a kernel descriptor goes to the kernel, every
//! other one to libc's function. Descriptors the kernel opens join
//! the descriptor table, so the socket hooks' read/write/close/dup serve
//! them too.
//!
//! ABI notes (x86_64 host, the kernel's generic 64-bit ABI):
//! - `O_*` open flags have the same values in both (checked below at
//!   compile time: O_DIRECT, O_LARGEFILE, O_DIRECTORY, O_NOFOLLOW,
//!   O_TMPFILE...), so flags pass unchanged.
//! - `struct stat` differs (field order and widths): converted.
//! - `struct statfs`, `struct statx`, `struct timespec` and `struct iovec`
//!   have the same layout: passed through.
//! - `open`, `openat` are variadic in C; on x86_64 a variadic argument
//!   travels in the register a fixed one would, so they are defined with a
//!   fixed `mode` argument.
//! - `mmap` of a kernel file is not supported: ENODEV.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use lkl::syscall::{abi, nr, raw, Errno};

use crate::hijack::call::{arg, fd_hook, fortify, kcall, libc_result, new_fd};
use crate::hijack::fdtable;
use crate::hijack::fs::paths::{self, route, Route};
use crate::hijack::host::{fail, libc_fn, set_errno};
use libc::AT_FDCWD;

// The open flags mean the same to both kernels (see the module doc).
const _: () = {
    assert!(libc::O_DIRECT == abi::O_DIRECT);
    assert!(libc::O_DIRECTORY == abi::O_DIRECTORY);
    assert!(libc::O_NOFOLLOW == abi::O_NOFOLLOW);
    assert!(libc::O_CLOEXEC == abi::O_CLOEXEC);
    assert!(libc::O_PATH == abi::O_PATH);
    assert!(libc::O_NOATIME == abi::O_NOATIME);
    assert!(libc::O_SYNC == abi::O_SYNC);
    assert!(libc::O_DSYNC == abi::O_DSYNC);
    assert!(libc::O_APPEND == abi::O_APPEND);
    assert!(libc::O_NONBLOCK == abi::O_NONBLOCK);
    // glibc's O_LARGEFILE is 0 on x86_64 (implied); the kernel's value
    // (0o100000) is what both kernels use when it is passed.
    assert!(libc::O_TMPFILE == 0o20000000 | abi::O_DIRECTORY);
    assert!(std::mem::size_of::<libc::statfs>() == std::mem::size_of::<abi::StatFs>());
    assert!(std::mem::size_of::<libc::statx>() == std::mem::size_of::<abi::Statx>());
    assert!(std::mem::size_of::<libc::timespec>() == std::mem::size_of::<abi::Timespec>());
};

/// Opens a kernel path and gives the descriptor a host number.
pub fn kernel_open(kdir: i32, path: &CStr, flags: c_int, mode: c_uint) -> c_int {
    new_fd(kcall(
        nr::OPENAT,
        [
            kdir.into(),
            arg!(path.as_ptr()),
            flags.into(),
            mode.into(),
            0,
            0,
        ],
    ))
}

fn needs_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

// ---- open ----------------------------------------------------------------

macro_rules! open_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (mode read only with O_CREAT/O_TMPFILE).
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
            let mode = if needs_mode(flags) { mode } else { 0 };
            match route(AT_FDCWD, path) {
                Route::Kernel(d, k) => kernel_open(d, &k, flags, mode),
                r => libc_fn!($name, fn(*const c_char, c_int, c_uint) -> c_int; r.host_path(path), flags, mode),
            }
        }
    };
}
open_hook!(open);
open_hook!(open64);

macro_rules! openat_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (mode read only with O_CREAT/O_TMPFILE).
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            flags: c_int,
            mode: c_uint,
        ) -> c_int {
            let mode = if needs_mode(flags) { mode } else { 0 };
            match route(dirfd, path) {
                Route::Kernel(d, k) => kernel_open(d, &k, flags, mode),
                r => libc_fn!($name, fn(c_int, *const c_char, c_int, c_uint) -> c_int; dirfd, r.host_path(path), flags, mode),
            }
        }
    };
}
openat_hook!(openat);
openat_hook!(openat64);

/// # Safety
/// libc's contract for `creat`.
#[no_mangle]
pub unsafe extern "C" fn creat(path: *const c_char, mode: libc::mode_t) -> c_int {
    // SAFETY: same contract.
    unsafe { open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, mode) }
}

/// # Safety
/// libc's contract for `creat64`.
#[no_mangle]
pub unsafe extern "C" fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int {
    // SAFETY: same contract.
    unsafe { open64(path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, mode) }
}

/// glibc's fortified open: O_CREAT or O_TMPFILE without a mode is a bug
/// in the program, which glibc stops; so do we.
fn fortify_open(flags: c_int) {
    if needs_mode(flags) {
        // SAFETY: abort has no preconditions; glibc's behaviour.
        unsafe { libc::abort() };
    }
}

/// # Safety
/// glibc's contract for `__open_2`.
#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    fortify_open(flags);
    // SAFETY: same contract, no mode.
    unsafe { open(path, flags, 0) }
}

/// # Safety
/// glibc's contract for `__open64_2`.
#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    fortify_open(flags);
    // SAFETY: same contract, no mode.
    unsafe { open64(path, flags, 0) }
}

/// # Safety
/// glibc's contract for `__openat_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    fortify_open(flags);
    // SAFETY: same contract, no mode.
    unsafe { openat(dirfd, path, flags, 0) }
}

/// # Safety
/// glibc's contract for `__openat64_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    fortify_open(flags);
    // SAFETY: same contract, no mode.
    unsafe { openat64(dirfd, path, flags, 0) }
}

// ---- stat ----------------------------------------------------------------

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

// ---- access, readlink ------------------------------------------------------

fn access_at(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> Option<c_int> {
    match route(dirfd, path) {
        Route::Kernel(d, k) => Some(kcall(
            nr::FACCESSAT2,
            [d.into(), arg!(k.as_ptr()), mode.into(), flags.into(), 0, 0],
        ) as c_int),
        _ => None,
    }
}

/// # Safety
/// libc's contract for `access`.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    let r = route(AT_FDCWD, path);
    if let Route::Kernel(d, k) = &r {
        return kcall(
            nr::FACCESSAT2,
            [(*d).into(), arg!(k.as_ptr()), mode.into(), 0, 0, 0],
        ) as c_int;
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
        Route::Kernel(d, k) => kcall(
            nr::READLINKAT,
            [d.into(), arg!(k.as_ptr()), arg!(buf), len as i64, 0, 0],
        ) as isize,
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
    fortify(len, buflen);
    // SAFETY: same contract once the length is checked.
    unsafe { readlinkat(AT_FDCWD, path, buf, len) }
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

// ---- directories, names ------------------------------------------------------

/// # Safety
/// libc's contract for `mkdirat`.
#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: libc::mode_t) -> c_int {
    match route(dirfd, path) {
        Route::Kernel(d, k) => kcall(
            nr::MKDIRAT,
            [d.into(), arg!(k.as_ptr()), mode.into(), 0, 0, 0],
        ) as c_int,
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
        Route::Kernel(d, k) => kcall(
            nr::MKDIRAT,
            [d.into(), arg!(k.as_ptr()), mode.into(), 0, 0, 0],
        ) as c_int,
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
        Route::Kernel(d, k) => kcall(
            nr::MKNODAT,
            [d.into(), arg!(k.as_ptr()), mode.into(), dev as i64, 0, 0],
        ) as c_int,
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
        Route::Kernel(d, k) => kcall(
            nr::UNLINKAT,
            [d.into(), arg!(k.as_ptr()), flags.into(), 0, 0, 0],
        ) as c_int,
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
                Err(Errno::EISDIR) => kcall(
                    nr::UNLINKAT,
                    [
                        d.into(),
                        arg!(k.as_ptr()),
                        libc::AT_REMOVEDIR.into(),
                        0,
                        0,
                        0,
                    ],
                ) as c_int,
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
    od: c_int,
    old: *const c_char,
    nd: c_int,
    new: *const c_char,
    nr: i64,
    flags: i64,
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
        od,
        old,
        nd,
        new,
        nr::RENAMEAT2,
        flags.into(),
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
        od,
        old,
        nd,
        new,
        nr::RENAMEAT2,
        0,
        |o, n| libc_fn!(renameat, fn(c_int, *const c_char, c_int, *const c_char) -> c_int; od, o, nd, n),
    )
}

/// # Safety
/// libc's contract for `rename`.
#[no_mangle]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    two_paths(
        AT_FDCWD,
        old,
        AT_FDCWD,
        new,
        nr::RENAMEAT2,
        0,
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
        od,
        old,
        nd,
        new,
        nr::LINKAT,
        flags.into(),
        |o, n| libc_fn!(linkat, fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int; od, o, nd, n, flags),
    )
}

/// # Safety
/// libc's contract for `link`.
#[no_mangle]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    two_paths(
        AT_FDCWD,
        old,
        AT_FDCWD,
        new,
        nr::LINKAT,
        0,
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

// ---- attributes ------------------------------------------------------------

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
            kcall(n, [d.into(), arg!(k.as_ptr()), mode.into(), f, 0, 0]) as c_int
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
        Route::Kernel(d, k) => kcall(
            nr::FCHMODAT,
            [d.into(), arg!(k.as_ptr()), mode.into(), 0, 0, 0],
        ) as c_int,
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
        Route::Kernel(d, k) => kcall(
            nr::FCHOWNAT,
            [
                d.into(),
                arg!(k.as_ptr()),
                uid.into(),
                gid.into(),
                flags.into(),
                0,
            ],
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
        Route::Kernel(d, k) => kcall(
            nr::FCHOWNAT,
            [d.into(), arg!(k.as_ptr()), uid.into(), gid.into(), 0, 0],
        ) as c_int,
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
        Route::Kernel(d, k) => kcall(
            nr::FCHOWNAT,
            [
                d.into(),
                arg!(k.as_ptr()),
                uid.into(),
                gid.into(),
                libc::AT_SYMLINK_NOFOLLOW.into(),
                0,
            ],
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

// ---- file systems ----------------------------------------------------------

macro_rules! statfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (struct statfs has one layout).
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, out: *mut libc::statfs) -> c_int {
            match route(AT_FDCWD, path) {
                Route::Kernel(_, k) => {
                    kcall(nr::STATFS, [arg!(k.as_ptr()), arg!(out), 0, 0, 0, 0]) as c_int
                }
                r => libc_fn!($name, fn(*const c_char, *mut libc::statfs) -> c_int; r.host_path(path), out),
            }
        }
    };
}
statfs_hook!(statfs);
statfs_hook!(statfs64);

/// glibc's statvfs from the kernel's statfs.
fn to_statvfs(s: &abi::StatFs, out: *mut libc::statvfs) -> c_int {
    if out.is_null() {
        return fail(libc::EFAULT);
    }
    const ST_VALID: i64 = 0x20;
    // SAFETY: all-zero is a valid struct statvfs (integers only).
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    v.f_bsize = s.f_bsize as u64;
    v.f_frsize = if s.f_frsize != 0 {
        s.f_frsize
    } else {
        s.f_bsize
    } as u64;
    v.f_blocks = s.f_blocks;
    v.f_bfree = s.f_bfree;
    v.f_bavail = s.f_bavail;
    v.f_files = s.f_files;
    v.f_ffree = s.f_ffree;
    v.f_favail = s.f_ffree;
    v.f_fsid = u64::from(s.f_fsid[0] as u32) | (u64::from(s.f_fsid[1] as u32) << 32);
    v.f_flag = if s.f_flags & ST_VALID != 0 {
        (s.f_flags & !ST_VALID) as u64
    } else {
        0
    };
    v.f_namemax = s.f_namelen as u64;
    // SAFETY: the program's struct statvfs.
    unsafe { out.write_unaligned(v) };
    0
}

fn kstatvfs(nr: i64, arg: i64, out: *mut libc::statvfs) -> c_int {
    let mut s = abi::StatFs::default();
    if kcall(nr, [arg, arg!(&mut s as *mut abi::StatFs), 0, 0, 0, 0]) < 0 {
        return -1;
    }
    to_statvfs(&s, out)
}

macro_rules! statvfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, out: *mut libc::statvfs) -> c_int {
            match route(AT_FDCWD, path) {
                Route::Kernel(_, k) => kstatvfs(nr::STATFS, arg!(k.as_ptr()), out),
                r => libc_fn!($name, fn(*const c_char, *mut libc::statvfs) -> c_int; r.host_path(path), out),
            }
        }
    };
}
statvfs_hook!(statvfs);
statvfs_hook!(statvfs64);

macro_rules! fstatvfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, out: *mut libc::statvfs) -> c_int {
            if let Some(k) = fdtable::kernel_fd(fd) {
                return kstatvfs(nr::FSTATFS, k.into(), out);
            }
            libc_fn!($name, fn(c_int, *mut libc::statvfs) -> c_int; fd, out)
        }
    };
}
fstatvfs_hook!(fstatvfs);
fstatvfs_hook!(fstatvfs64);

// ---- calls on kernel descriptors -------------------------------------------

fd_hook!(fsync, nr::FSYNC, () -> c_int);
fd_hook!(fdatasync, nr::FDATASYNC, () -> c_int);
fd_hook!(syncfs, nr::SYNCFS, () -> c_int);
fd_hook!(lseek, nr::LSEEK, (off: i64, whence: c_int) -> i64);
fd_hook!(lseek64, nr::LSEEK, (off: i64, whence: c_int) -> i64);
fd_hook!(pread, nr::PREAD64, (buf: *mut c_void, n: usize, off: i64) -> isize);
fd_hook!(pread64, nr::PREAD64, (buf: *mut c_void, n: usize, off: i64) -> isize);
fd_hook!(pwrite, nr::PWRITE64, (buf: *const c_void, n: usize, off: i64) -> isize);
fd_hook!(pwrite64, nr::PWRITE64, (buf: *const c_void, n: usize, off: i64) -> isize);
// preadv's position travels as (low, high) words; high is 0 on 64-bit.
fd_hook!(preadv, nr::PREADV, (iov: *const libc::iovec, cnt: c_int, off: i64) -> isize);
fd_hook!(preadv64, nr::PREADV, (iov: *const libc::iovec, cnt: c_int, off: i64) -> isize);
fd_hook!(pwritev, nr::PWRITEV, (iov: *const libc::iovec, cnt: c_int, off: i64) -> isize);
fd_hook!(pwritev64, nr::PWRITEV, (iov: *const libc::iovec, cnt: c_int, off: i64) -> isize);
fd_hook!(ftruncate, nr::FTRUNCATE, (len: i64) -> c_int);
fd_hook!(ftruncate64, nr::FTRUNCATE, (len: i64) -> c_int);
fd_hook!(fchmod, nr::FCHMOD, (mode: libc::mode_t) -> c_int);
fd_hook!(fchown, nr::FCHOWN, (uid: libc::uid_t, gid: libc::gid_t) -> c_int);
fd_hook!(fstatfs, nr::FSTATFS, (out: *mut libc::statfs) -> c_int);
fd_hook!(fstatfs64, nr::FSTATFS, (out: *mut libc::statfs) -> c_int);
fd_hook!(fallocate, nr::FALLOCATE, (mode: c_int, off: i64, len: i64) -> c_int);
fd_hook!(fallocate64, nr::FALLOCATE, (mode: c_int, off: i64, len: i64) -> c_int);
fd_hook!(flock, nr::FLOCK, (op: c_int) -> c_int);

macro_rules! preadv2_hook {
    ($name:ident, $nr:expr, $iov:ty) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, iov: $iov, cnt: c_int, off: i64, flags: c_int) -> isize {
            if let Some(k) = fdtable::kernel_fd(fd) {
                return kcall($nr, [k.into(), arg!(iov), cnt.into(), off, 0, flags.into()]) as isize;
            }
            libc_fn!($name, fn(c_int, $iov, c_int, i64, c_int) -> isize; fd, iov, cnt, off, flags)
        }
    };
}
preadv2_hook!(preadv2, nr::PREADV2, *const libc::iovec);
preadv2_hook!(preadv64v2, nr::PREADV2, *const libc::iovec);
preadv2_hook!(pwritev2, nr::PWRITEV2, *const libc::iovec);
preadv2_hook!(pwritev64v2, nr::PWRITEV2, *const libc::iovec);

macro_rules! posix_fallocate_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (returns the error number).
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, off: i64, len: i64) -> c_int {
            if let Some(k) = fdtable::kernel_fd(fd) {
                let args = [k.into(), 0, off, len, 0, 0];
                // SAFETY: no pointer arguments.
                return match unsafe { raw(nr::FALLOCATE, args) } {
                    Ok(_) => 0,
                    Err(e) => e.0,
                };
            }
            match libc_fn!($name, fn(c_int, i64, i64) -> c_int) {
                // SAFETY: libc's function with the program's arguments.
                Some(f) => unsafe { f(fd, off, len) },
                None => libc::ENOSYS,
            }
        }
    };
}
posix_fallocate_hook!(posix_fallocate);
posix_fallocate_hook!(posix_fallocate64);

macro_rules! mmap_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call. A kernel file cannot be mapped
        /// (its pages live in the kernel's memory, not in files the host
        /// can map): ENODEV, as for a file system without mmap.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: i64,
        ) -> *mut c_void {
            if flags & libc::MAP_ANONYMOUS == 0 && fdtable::kernel_fd(fd).is_some() {
                // A packet socket's receive ring is ours to map.
                if let Some(p) = crate::hijack::net::packet::map(fd, len, off) {
                    return p;
                }
                set_errno(libc::ENODEV);
                return libc::MAP_FAILED;
            }
            match libc_fn!(
                $name,
                fn(*mut c_void, usize, c_int, c_int, c_int, i64) -> *mut c_void
            ) {
                // SAFETY: libc's function with the program's arguments.
                Some(f) => unsafe { f(addr, len, prot, flags, fd, off) },
                None => {
                    set_errno(libc::ENOSYS);
                    libc::MAP_FAILED
                }
            }
        }
    };
}
mmap_hook!(mmap);
mmap_hook!(mmap64);

// sendfile and splice across the worlds live in io.rs.

// ---- working directory -----------------------------------------------------

/// The kernel's idea of its working directory.
fn kernel_getcwd() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = kcall(
        nr::GETCWD,
        [arg!(buf.as_mut_ptr()), buf.len() as i64, 0, 0, 0, 0],
    );
    if n <= 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    buf.truncate(len);
    Some(buf)
}

/// # Safety
/// libc's contract for `chdir`.
#[no_mangle]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    match route(AT_FDCWD, path) {
        Route::Kernel(_, k) => {
            if kcall(nr::CHDIR, [arg!(k.as_ptr()), 0, 0, 0, 0, 0]) < 0 {
                return -1;
            }
            let cwd = kernel_getcwd().unwrap_or_else(|| k.to_bytes().to_vec());
            paths::set_kernel_cwd(Some(cwd));
            0
        }
        r => {
            let res = libc_fn!(chdir, fn(*const c_char) -> c_int; r.host_path(path));
            if res == 0 {
                leave_kernel_cwd();
            }
            res
        }
    }
}

/// The program's working directory is back on the host: the kernel's
/// goes to its root, so it keeps no disk busy.
pub fn leave_kernel_cwd() {
    if paths::kernel_cwd().is_some() {
        paths::set_kernel_cwd(None);
        let _ = kcall(nr::CHDIR, [arg!(c"/".as_ptr()), 0, 0, 0, 0, 0]);
    }
}

/// # Safety
/// libc's contract for `fchdir`.
#[no_mangle]
pub unsafe extern "C" fn fchdir(fd: c_int) -> c_int {
    if let Some(k) = fdtable::kernel_fd(fd) {
        if kcall(nr::FCHDIR, [k.into(), 0, 0, 0, 0, 0]) < 0 {
            return -1;
        }
        match kernel_getcwd() {
            Some(cwd) => paths::set_kernel_cwd(Some(cwd)),
            None => {
                return fail(libc::ENOENT);
            }
        }
        return 0;
    }
    let res = libc_fn!(fchdir, fn(c_int) -> c_int; fd);
    if res == 0 {
        leave_kernel_cwd();
    }
    res
}

/// The working directory on a disk into the program's buffer, glibc's
/// way: a null buffer is allocated (of `size`, or as needed if 0).
fn copy_cwd(cwd: &[u8], buf: *mut c_char, size: usize) -> *mut c_char {
    let need = cwd.len() + 1;
    let (dst, cap) = if buf.is_null() {
        let cap = if size == 0 { need } else { size };
        // SAFETY: malloc; the program frees it with free().
        let m = unsafe { libc::malloc(cap) }.cast::<c_char>();
        if m.is_null() {
            set_errno(libc::ENOMEM);
            return std::ptr::null_mut();
        }
        (m, cap)
    } else {
        if size == 0 {
            set_errno(libc::EINVAL);
            return std::ptr::null_mut();
        }
        (buf, size)
    };
    if need > cap {
        if buf.is_null() {
            // SAFETY: our own allocation.
            unsafe { libc::free(dst.cast()) };
        }
        set_errno(libc::ERANGE);
        return std::ptr::null_mut();
    }
    // SAFETY: `dst` holds at least `need` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(cwd.as_ptr().cast::<c_char>(), dst, cwd.len());
        *dst.add(cwd.len()) = 0;
    }
    dst
}

/// # Safety
/// libc's contract for `getcwd`.
#[no_mangle]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char {
    if let Some(cwd) = paths::kernel_cwd() {
        return copy_cwd(&cwd, buf, size);
    }
    match libc_fn!(getcwd, fn(*mut c_char, usize) -> *mut c_char) {
        // SAFETY: libc's function with the program's arguments.
        Some(f) => unsafe { f(buf, size) },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// glibc's contract for `__getcwd_chk`.
#[no_mangle]
pub unsafe extern "C" fn __getcwd_chk(buf: *mut c_char, size: usize, buflen: usize) -> *mut c_char {
    fortify(size, buflen);
    // SAFETY: same contract once the length is checked.
    unsafe { getcwd(buf, size) }
}

/// # Safety
/// glibc's contract for `get_current_dir_name`.
#[no_mangle]
pub unsafe extern "C" fn get_current_dir_name() -> *mut c_char {
    if let Some(cwd) = paths::kernel_cwd() {
        return copy_cwd(&cwd, std::ptr::null_mut(), 0);
    }
    match libc_fn!(get_current_dir_name, fn() -> *mut c_char) {
        // SAFETY: libc's function.
        Some(f) => unsafe { f() },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}

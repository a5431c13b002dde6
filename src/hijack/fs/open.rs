//! `open`, `openat`, `creat` and glibc's fortified `__open_2` family. A
//! path on a disk opens a kernel file, which is given a host number
//! (`call::new_fd`), so the descriptor calls serve it from then on.
//! `/etc/resolv.conf` opened for reading says the config's `nameserver`
//! when there is one (`resolve::resolv_conf`).
//!
//! The `O_*` flags have the same values in both ABIs (asserted below:
//! O_DIRECT, O_DIRECTORY, O_NOFOLLOW, O_TMPFILE...), so they pass
//! unchanged. `open` and `openat` are variadic in C; on x86_64 a variadic
//! argument travels in the register a fixed one would, so they are defined
//! with a fixed `mode` argument.

use std::ffi::{c_char, c_int, c_uint, CStr};

use libc::AT_FDCWD;
use lkl::syscall::{abi, nr};

use crate::hijack::call::new_fd;
use crate::hijack::fs::paths::{kcall_path, route, Route};
use crate::hijack::host::libc_fn;
use crate::hijack::net::resolve::resolv_conf;

// The open flags mean the same to both kernels.
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
};

/// Opens a kernel path and gives the descriptor a host number.
pub fn kernel_open(kdir: i32, path: &CStr, flags: c_int, mode: c_uint) -> c_int {
    new_fd(
        kcall_path(nr::OPENAT, kdir, path, [flags.into(), mode.into(), 0, 0]),
        flags & libc::O_CLOEXEC != 0,
    )
}

fn needs_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

macro_rules! open_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (mode read only with O_CREAT/O_TMPFILE).
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
            let mode = if needs_mode(flags) { mode } else { 0 };
            if let Some(fd) = resolv_conf(path, flags) {
                return fd;
            }
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
            if let Some(fd) = resolv_conf(path, flags) {
                return fd;
            }
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

//! How every hook calls the kernel and reports a result: one kernel call
//! (interruptible by the program's signal handlers, EPIPE raising SIGPIPE,
//! see signals.rs; EBADF for inherited descriptors in a forked child),
//! errno set as libc would set it, and the pointer-to-argument cast.

use std::ffi::c_int;

use lkl::syscall::{nr, raw, Errno};

use crate::fdtable;

/// This thread's errno.
pub fn errno() -> i32 {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
pub fn set_errno(e: i32) {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// The kernel's result as libc's: -1 and errno (in the host's numbering)
/// on failure. Setting errno is the last thing a hook does.
pub fn ret(r: Result<i64, Errno>) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(lkl::xlate::errno_to_host(e.0));
            -1
        }
    }
}

/// One kernel call with raw arguments (the program's own, passed on to the
/// same call with the same layouts, or our own buffers).
pub fn kcall(nr: i64, args: [i64; 6]) -> i64 {
    ret(crate::signals::call(nr, args).map_err(crate::init::after_fork))
}

/// A kernel call that returns a new kernel descriptor: give it a host number.
pub fn kcall_newfd(nr: i64, args: [i64; 6]) -> c_int {
    let kfd = kcall(nr, args);
    if kfd < 0 {
        return -1;
    }
    match fdtable::insert(kfd as i32) {
        Ok(hfd) => hfd,
        Err(e) => {
            // SAFETY: closes the descriptor the kernel just made.
            let _ = unsafe { raw(nr::CLOSE, [kfd, 0, 0, 0, 0, 0]) };
            set_errno(e);
            -1
        }
    }
}

/// A pointer or integer argument as a raw syscall argument.
macro_rules! p {
    ($e:expr) => {
        $e as usize as i64
    };
}
pub(crate) use p;

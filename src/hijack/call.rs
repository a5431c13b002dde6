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
    if impossible_pointer(nr, &args) {
        return ret(Err(Errno::EFAULT));
    }
    ret(crate::signals::call(nr, args).map_err(crate::init::after_fork))
}

/// True for an address no mapping can have: below the host's lowest
/// mappable address (vm.mmap_min_addr, 64 KiB on x86_64, so NULL and
/// small offsets from it) or in the kernel's half.
fn bad_address(p: i64) -> bool {
    !(0x1_0000..0x0000_8000_0000_0000).contains(&p)
}

/// An iovec array at an address no mapping can have. Its entries are left
/// to the kernel, whose copies fault safely: reading them here would crash
/// on an array in an unmapped page. A count the kernel refuses anyway
/// (over UIO_MAXIOV) is left to it (EINVAL, EMSGSIZE).
fn bad_iov(iov: i64, count: i64) -> bool {
    (1..=1024).contains(&count) && bad_address(iov)
}

/// The host kernel answers EFAULT when a call's buffer is not mapped, and
/// so does ours: its copies of program memory are fault-safe (see
/// src/host/uaccess.rs). This answers the pointers no mapping can have
/// (NULL above all) before the call, cheaply, in the calls programs make
/// on sockets; it never reads the program's memory itself.
fn impossible_pointer(nr: i64, a: &[i64; 6]) -> bool {
    let buf = |p: i64, len: i64| len != 0 && bad_address(p);
    let opt = |p: i64| p != 0 && bad_address(p);
    match nr {
        nr::READ | nr::WRITE => buf(a[1], a[2]),
        nr::READV | nr::WRITEV | nr::PREADV | nr::PWRITEV => bad_iov(a[1], a[2]),
        // A NULL address is no address (EDESTADDRREQ on an unconnected socket).
        nr::SENDTO => buf(a[1], a[2]) || opt(a[4]),
        nr::RECVFROM => buf(a[1], a[2]) || opt(a[4]) || opt(a[5]),
        nr::SENDMSG | nr::RECVMSG => bad_address(a[1]),
        nr::BIND | nr::CONNECT => buf(a[1], a[2]),
        nr::SETSOCKOPT => buf(a[3], a[4]),
        nr::GETSOCKOPT => bad_address(a[4]) || opt(a[3]),
        nr::GETSOCKNAME | nr::GETPEERNAME => bad_address(a[1]) || bad_address(a[2]),
        nr::ACCEPT4 => opt(a[1]) || opt(a[2]),
        _ => false,
    }
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

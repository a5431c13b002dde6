//! How every hook calls the kernel and reports a result: one kernel call
//! (interruptible by the program's signal handlers, EPIPE raising SIGPIPE,
//! see signals.rs; EBADF for inherited descriptors in a forked child),
//! errno set as libc would set it, a new kernel descriptor given a host
//! number, the argument cast (`arg!`), and `fd_hook!` for the many hooks
//! that are one descriptor plus arguments passed through.

use std::ffi::c_int;

use lkl::syscall::{nr, raw, Errno};
use lkl::xlate;

use crate::hijack::fdtable;
use crate::hijack::host::{self, set_errno};
use crate::hijack::lifecycle::after_fork;
use crate::hijack::signals;

// The hooks pass these values through unchanged: that is right only while
// the tables say both ABIs agree.
const _: () = assert!(
    xlate::ERRNO_IDENTITY
        && xlate::SOCKOPT_IDENTITY
        && xlate::IOCTL_IDENTITY
        && xlate::FCNTL_IDENTITY
        && xlate::OFLAGS_IDENTITY
        && xlate::SOCKFLAGS_IDENTITY
        && xlate::MSGFLAGS_IDENTITY
        && xlate::EVENTS_IDENTITY
        && xlate::KERNEL_EPOLL_EVENT_SIZE == xlate::HOST_EPOLL_EVENT_SIZE
        && xlate::KERNEL_SIGSET_SIZE == xlate::HOST_SIGSET_SIZE
);

/// The size of a signal set as the `*_pwait`/`ppoll`/`pselect6` system
/// calls take it, the same in both ABIs (asserted above): 64 signals.
pub const SIGSET_SIZE: i64 = xlate::KERNEL_SIGSET_SIZE as i64;

/// The kernel's result as libc's: -1 and errno (in the host's numbering)
/// on failure. Setting errno is the last thing a hook does.
pub fn libc_result(r: Result<i64, Errno>) -> i64 {
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
        return libc_result(Err(Errno::EFAULT));
    }
    libc_result(signals::call(nr, args).map_err(after_fork))
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

/// Gives kernel descriptor `kfd` (a kernel call's result: -1 passes
/// through) a host number, closing it if none is left. Its close-on-exec
/// flag is the placeholder's, set as the call asked (`cloexec`): a
/// descriptor made without it survives an exec in the tree, as on Linux.
pub fn new_fd(kfd: i64, cloexec: bool) -> c_int {
    if kfd < 0 {
        return -1;
    }
    match fdtable::insert(kfd as i32) {
        Ok(hfd) => {
            if !cloexec {
                // SAFETY: the host's fcntl on the placeholder just made.
                let _ = unsafe { host::host_syscall!(libc::SYS_fcntl, hfd, libc::F_SETFD, 0) };
            }
            hfd
        }
        Err(e) => {
            // SAFETY: closes the descriptor the kernel just made.
            let _ = unsafe { raw(nr::CLOSE, [kfd, 0, 0, 0, 0, 0]) };
            set_errno(e);
            -1
        }
    }
}

/// A kernel call that returns a new kernel descriptor: give it a host
/// number (close-on-exec as `socket`'s type or `accept4`'s flags ask;
/// any other call's is).
pub fn kcall_newfd(nr: i64, args: [i64; 6]) -> c_int {
    let flags = match nr {
        nr::SOCKET => args[1],
        nr::ACCEPT4 => args[3],
        _ => i64::from(libc::SOCK_CLOEXEC),
    };
    new_fd(kcall(nr, args), flags & i64::from(libc::SOCK_CLOEXEC) != 0)
}

/// Takes host number `hfd` of a kernel descriptor away: closes the kernel
/// file and the placeholder. The kernel close's result.
pub fn close_kernel_fd(hfd: c_int) -> c_int {
    let r = match fdtable::remove(hfd) {
        Some(k) => kcall(nr::CLOSE, [k.into(), 0, 0, 0, 0, 0]) as c_int,
        None => 0,
    };
    let _ = host::close(hfd);
    r
}

/// glibc's fortified wrappers (`_FORTIFY_SOURCE`: `__read_chk` and the
/// like) end in the same calls; a request longer than the buffer aborts,
/// as glibc's own check does.
pub fn fortify(len: usize, buflen: usize) {
    if len > buflen {
        // SAFETY: abort has no preconditions; this is glibc's behaviour.
        unsafe { libc::abort() };
    }
}

/// A pointer or integer argument as a raw system call argument.
macro_rules! arg {
    ($e:expr) => {
        $e as usize as i64
    };
}
pub(crate) use arg;

/// Defines a hook whose first argument is a descriptor and whose other
/// arguments pass through unchanged: on a kernel descriptor the kernel call
/// `nr` with the same arguments, on any other libc's function of the same
/// name.
///
/// `fd_hook!(name, nr, (a: A, b: B) -> R)` exports it as `name`;
/// `fd_hook!(local = name, nr, (a: A, b: B) -> R)` defines it as `local`,
/// not exported, for a hook of that name that does more first.
macro_rules! fd_hook {
    ($name:ident, $nr:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $crate::hijack::call::fd_hook!(@ #[no_mangle] $name = $name, $nr, ($($arg: $ty),*) -> $ret);
    };
    ($local:ident = $name:ident, $nr:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $crate::hijack::call::fd_hook!(@ $local = $name, $nr, ($($arg: $ty),*) -> $ret);
    };
    (@ $(#[$m:meta])? $local:ident = $name:ident, $nr:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        /// # Safety
        /// libc's contract for this call.
        $(#[$m])?
        pub unsafe extern "C" fn $local(fd: std::ffi::c_int, $($arg: $ty),*) -> $ret {
            if let Some(kfd) = $crate::hijack::fdtable::kernel_fd(fd) {
                #[allow(unused_mut)]
                let mut args = [i64::from(kfd), 0, 0, 0, 0, 0];
                let mut _i = 1;
                $(args[_i] = $crate::hijack::call::arg!($arg); _i += 1;)*
                return $crate::hijack::call::kcall($nr, args) as $ret;
            }
            $crate::hijack::host::libc_fn!($name, fn(std::ffi::c_int $(, $ty)*) -> $ret; fd $(, $arg)*)
        }
    };
}
pub(crate) use fd_hook;

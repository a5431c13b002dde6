//! The real libc functions, found with `dlsym(RTLD_NEXT)` once, at first
//! use (before or in the constructor). A symbol that cannot be found makes
//! its hook fail with ENOSYS rather than panic (redhook would panic: we do
//! not use it for that reason).

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

macro_rules! real_fns {
    ($($name:ident : fn($($arg:ty),*) -> $ret:ty;)*) => {
        /// Addresses of the real functions (None if absent).
        #[allow(non_snake_case)]
        pub struct Real {
            $(pub $name: Option<unsafe extern "C" fn($($arg),*) -> $ret>,)*
        }

        fn resolve() -> Real {
            Real {
                $($name: {
                    let name = concat!(stringify!($name), "\0");
                    // SAFETY: a NUL-terminated name; RTLD_NEXT finds the
                    // next definition after this library, i.e. libc's.
                    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast::<c_char>()) };
                    // SAFETY: the symbol of that name has this C signature.
                    (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> $ret>(p) })
                },)*
            }
        }
    };
}

real_fns! {
    socket: fn(c_int, c_int, c_int) -> c_int;
    close: fn(c_int) -> c_int;
    read: fn(c_int, *mut c_void, usize) -> isize;
    write: fn(c_int, *const c_void, usize) -> isize;
    bind: fn(c_int, *const libc::sockaddr, libc::socklen_t) -> c_int;
    connect: fn(c_int, *const libc::sockaddr, libc::socklen_t) -> c_int;
    listen: fn(c_int, c_int) -> c_int;
    accept4: fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t, c_int) -> c_int;
    send: fn(c_int, *const c_void, usize, c_int) -> isize;
    recv: fn(c_int, *mut c_void, usize, c_int) -> isize;
    sendto: fn(c_int, *const c_void, usize, c_int, *const libc::sockaddr, libc::socklen_t) -> isize;
    recvfrom: fn(c_int, *mut c_void, usize, c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> isize;
    sendmsg: fn(c_int, *const libc::msghdr, c_int) -> isize;
    recvmsg: fn(c_int, *mut libc::msghdr, c_int) -> isize;
    setsockopt: fn(c_int, c_int, c_int, *const c_void, libc::socklen_t) -> c_int;
    getsockopt: fn(c_int, c_int, c_int, *mut c_void, *mut libc::socklen_t) -> c_int;
    getsockname: fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int;
    getpeername: fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int;
    shutdown: fn(c_int, c_int) -> c_int;
    poll: fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int;
    select: fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int;
    eventfd: fn(u32, c_int) -> c_int;
    dup: fn(c_int) -> c_int;
    readv: fn(c_int, *const libc::iovec, c_int) -> isize;
    writev: fn(c_int, *const libc::iovec, c_int) -> isize;
    dup2: fn(c_int, c_int) -> c_int;
    dup3: fn(c_int, c_int, c_int) -> c_int;
}

static REAL: OnceLock<Real> = OnceLock::new();

/// The real functions.
pub fn real() -> &'static Real {
    REAL.get_or_init(resolve)
}

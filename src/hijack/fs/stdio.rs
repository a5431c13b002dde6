//! `FILE` streams on kernel files. glibc's stdio reads and writes through
//! its internal calls, which never reach the hooks, so a stream on a
//! kernel descriptor is a `fopencookie` stream whose functions call the
//! kernel. `fopen`/`fopen64` of a path on a disk and `fdopen` of a kernel
//! descriptor make one; `fileno` of such a stream is -1 (glibc's rule for
//! cookie streams). `freopen` onto a disk path is not supported (an
//! existing `FILE` cannot be turned into a cookie stream): it fails with
//! ENOTSUP and leaves the stream as it was.

use std::ffi::{c_char, c_int, c_void, CStr};

use lkl::syscall::nr;

use crate::hijack::call::{arg, close_kernel_fd, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::open::kernel_open;
use crate::hijack::fs::paths::{route, Route};
use crate::hijack::host::{errno, fail, libc_fn, set_errno};

type ReadFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> isize;
type WriteFn = unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> isize;
type SeekFn = unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// glibc's `cookie_io_functions_t`.
#[repr(C)]
struct CookieIo {
    read: Option<ReadFn>,
    write: Option<WriteFn>,
    seek: Option<SeekFn>,
    close: Option<CloseFn>,
}

extern "C" {
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut libc::FILE;
}

/// The cookie: the host number of the kernel descriptor.
fn cookie_fd(cookie: *mut c_void) -> Option<i32> {
    // SAFETY: the cookie is a Box<c_int> of ours, alive until close.
    let hfd = unsafe { *cookie.cast::<c_int>() };
    fdtable::kernel_fd(hfd)
}

unsafe extern "C" fn c_read(cookie: *mut c_void, buf: *mut c_char, n: usize) -> isize {
    let Some(k) = cookie_fd(cookie) else {
        return fail(libc::EBADF);
    };
    kcall(nr::READ, [k.into(), arg!(buf), n as i64, 0, 0, 0]) as isize
}

unsafe extern "C" fn c_write(cookie: *mut c_void, buf: *const c_char, n: usize) -> isize {
    let Some(k) = cookie_fd(cookie) else {
        set_errno(libc::EBADF);
        return 0;
    };
    // A cookie write reports an error as 0 bytes (errno set).
    kcall(nr::WRITE, [k.into(), arg!(buf), n as i64, 0, 0, 0]).max(0) as isize
}

unsafe extern "C" fn c_seek(cookie: *mut c_void, off: *mut i64, whence: c_int) -> c_int {
    let Some(k) = cookie_fd(cookie) else {
        return fail(libc::EBADF);
    };
    // SAFETY: glibc passes a valid offset.
    let at = unsafe { *off };
    let r = kcall(nr::LSEEK, [k.into(), at, whence.into(), 0, 0, 0]);
    if r < 0 {
        return -1;
    }
    // SAFETY: as above.
    unsafe { *off = r };
    0
}

unsafe extern "C" fn c_close(cookie: *mut c_void) -> c_int {
    // SAFETY: the Box<c_int> made in `cookie_stream`, closed once.
    let hfd = *unsafe { Box::from_raw(cookie.cast::<c_int>()) };
    close_kernel_fd(hfd)
}

/// A stream over host number `hfd` of a kernel descriptor (owned by the
/// stream from now on).
fn cookie_stream(hfd: c_int, mode: *const c_char) -> *mut libc::FILE {
    let cookie = Box::into_raw(Box::new(hfd)).cast::<c_void>();
    let io = CookieIo {
        read: Some(c_read),
        write: Some(c_write),
        seek: Some(c_seek),
        close: Some(c_close),
    };
    // SAFETY: glibc's fopencookie with our cookie and functions; the mode
    // is the program's.
    let f = unsafe { fopencookie(cookie, mode, io) };
    if f.is_null() {
        // SAFETY: the cookie was not taken.
        drop(unsafe { Box::from_raw(cookie.cast::<c_int>()) });
    }
    f
}

/// open(2) flags for an fopen mode: r, w, a, optional +, then b, x
/// (O_EXCL), e (O_CLOEXEC) in any order; anything after a comma ignored.
fn mode_flags(mode: &[u8]) -> Option<c_int> {
    let (first, rest) = mode.split_first()?;
    let mut flags = match first {
        b'r' => libc::O_RDONLY,
        b'w' => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        b'a' => libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        _ => return None,
    };
    for &c in rest.iter().take_while(|&&c| c != b',') {
        match c {
            b'+' => flags = (flags & !libc::O_ACCMODE) | libc::O_RDWR,
            b'x' => flags |= libc::O_EXCL,
            b'e' => flags |= libc::O_CLOEXEC,
            _ => {}
        }
    }
    Some(flags)
}

fn kernel_fopen(kdir: i32, path: &CStr, mode: *const c_char) -> *mut libc::FILE {
    if mode.is_null() {
        set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    }
    // SAFETY: the program's NUL-terminated mode.
    let Some(flags) = mode_flags(unsafe { CStr::from_ptr(mode) }.to_bytes()) else {
        set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    };
    let hfd = kernel_open(kdir, path, flags, 0o666);
    if hfd < 0 {
        return std::ptr::null_mut();
    }
    let f = cookie_stream(hfd, mode);
    if f.is_null() {
        // This thread's errno, kept across the close.
        let e = errno();
        close_kernel_fd(hfd);
        set_errno(e);
    }
    f
}

macro_rules! fopen_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            mode: *const c_char,
        ) -> *mut libc::FILE {
            match route(libc::AT_FDCWD, path) {
                Route::Kernel(d, k) => kernel_fopen(d, &k, mode),
                r => {
                    let p = r.host_path(path);
                    libc_fn!($name, fn(*const c_char, *const c_char) -> *mut libc::FILE; p, mode; or std::ptr::null_mut())
                }
            }
        }
    };
}
fopen_hook!(fopen);
fopen_hook!(fopen64);

/// # Safety
/// libc's contract for `fdopen`.
#[no_mangle]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE {
    if fdtable::kernel_fd(fd).is_some() {
        return cookie_stream(fd, mode);
    }
    libc_fn!(fdopen, fn(c_int, *const c_char) -> *mut libc::FILE; fd, mode; or std::ptr::null_mut())
}

macro_rules! freopen_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            mode: *const c_char,
            stream: *mut libc::FILE,
        ) -> *mut libc::FILE {
            let r = route(libc::AT_FDCWD, path);
            if let Route::Kernel(..) = r {
                set_errno(libc::ENOTSUP);
                return std::ptr::null_mut();
            }
            let p = r.host_path(path);
            libc_fn!($name, fn(*const c_char, *const c_char, *mut libc::FILE) -> *mut libc::FILE; p, mode, stream; or std::ptr::null_mut())
        }
    };
}
freopen_hook!(freopen);
freopen_hook!(freopen64);

//! `FILE` streams on kernel files: `fopen`/`fopen64` of a path on a disk
//! and `fdopen` of a kernel descriptor make a cookie stream (fd/stream.rs)
//! whose functions call the kernel; `fileno` of it is its descriptor.
//! `freopen` onto a disk path is not supported (an existing `FILE` cannot
//! be turned into a cookie stream): it fails with ENOTSUP and leaves the
//! stream as it was.

use std::ffi::{c_char, c_int, CStr};

use crate::hijack::call::close_kernel_fd;
use crate::hijack::fd::stream::cookie_stream;
use crate::hijack::fdtable;
use crate::hijack::fs::open::kernel_open;
use crate::hijack::fs::paths::{route, Route};
use crate::hijack::host::{errno, libc_fn, set_errno};

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

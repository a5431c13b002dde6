//! The working directory. `chdir` into a directory on a disk moves the
//! kernel's working directory there and paths.rs remembers its path, which
//! `getcwd` then answers; `chdir` back to the host moves the kernel's to
//! its root, so it keeps no disk busy.

use std::ffi::{c_char, c_int};

use libc::AT_FDCWD;
use lkl::syscall::nr;

use crate::hijack::call::{arg, fortify, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::paths::{self, route, Route};
use crate::hijack::host::{fail, libc_fn, set_errno};

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

/// A new image in a tree: its process's working directory in the kernel
/// is where a parent left it (a `chdir` into a disk before the exec); the
/// kernel's root means the host's.
pub fn adopt_kernel_cwd() {
    if let Some(cwd) = kernel_getcwd().filter(|c| c.as_slice() != b"/") {
        paths::set_kernel_cwd(Some(cwd));
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
    libc_fn!(getcwd, fn(*mut c_char, usize) -> *mut c_char; buf, size; or std::ptr::null_mut())
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
    libc_fn!(get_current_dir_name, fn() -> *mut c_char; ; or std::ptr::null_mut())
}

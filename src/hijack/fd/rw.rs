//! read, write, readv, writev and glibc's fortified `__read_chk`, on any
//! descriptor. The most frequent calls a program makes: on a host
//! descriptor the hook is one table load and libc's function
//! (bin/hook-cost.sh counts what it adds).

use std::ffi::{c_int, c_void};

use lkl::syscall::nr;

use crate::hijack::call::{arg, fd_hook, fortify, kcall};
use crate::hijack::fdtable;
use crate::hijack::host::libc_fn;

/// # Safety
/// libc's contract for `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(nr::READ, [kfd.into(), arg!(buf), count as i64, 0, 0, 0]) as isize;
    }
    libc_fn!(read, fn(c_int, *mut c_void, usize) -> isize; fd, buf, count)
}

/// # Safety
/// libc's contract for `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: usize) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(nr::WRITE, [kfd.into(), arg!(buf), count as i64, 0, 0, 0]) as isize;
    }
    libc_fn!(write, fn(c_int, *const c_void, usize) -> isize; fd, buf, count)
}

fd_hook!(readv, nr::READV, (iov: *const libc::iovec, n: c_int) -> isize);
fd_hook!(writev, nr::WRITEV, (iov: *const libc::iovec, n: c_int) -> isize);

/// # Safety
/// glibc's contract for `__read_chk`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: usize,
    buflen: usize,
) -> isize {
    fortify(count, buflen);
    // SAFETY: same contract as read once the length is checked.
    unsafe { read(fd, buf, count) }
}

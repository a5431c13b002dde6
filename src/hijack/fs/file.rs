//! Calls on an open kernel file whose arguments pass through
//! (`fd_hook!`): sync, seek, positioned and vectored I/O, truncate, chmod,
//! chown, statfs, fallocate, flock; `posix_fallocate` (which returns the
//! error number); and `mmap`. A kernel file cannot be mapped (its pages
//! live in the kernel's memory, not in a file the host can map): ENODEV,
//! as for a file system without mmap, except a packet socket's receive ring
//! (net/packet.rs). sendfile and splice between any two descriptors are in
//! fd/copy.rs.

use std::ffi::{c_int, c_void};

use lkl::syscall::{nr, raw};

use crate::hijack::call::{arg, fd_hook, kcall};
use crate::hijack::fdtable;
use crate::hijack::host::{libc_fn, set_errno};
use crate::hijack::net::packet;

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
                Some(f) => crate::hijack::tier::gate::allowed(|| unsafe { f(fd, off, len) }),
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
                if let Some(p) = packet::map(fd, len, off) {
                    return p;
                }
                set_errno(libc::ENODEV);
                return libc::MAP_FAILED;
            }
            libc_fn!($name, fn(*mut c_void, usize, c_int, c_int, c_int, i64) -> *mut c_void;
                addr, len, prot, flags, fd, off; or libc::MAP_FAILED)
        }
    };
}
mmap_hook!(mmap);
mmap_hook!(mmap64);

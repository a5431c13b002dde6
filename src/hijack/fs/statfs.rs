//! File system statistics: `struct statfs` has one layout in both ABIs
//! (asserted below) and passes through; glibc's `struct statvfs` is built
//! from the kernel's statfs.

use std::ffi::{c_char, c_int};

use libc::AT_FDCWD;
use lkl::syscall::{abi, nr};

use crate::hijack::call::{arg, kcall};
use crate::hijack::fdtable;
use crate::hijack::fs::paths::{route, Route};
use crate::hijack::host::{fail, libc_fn};

// Passed through unchanged.
const _: () = assert!(std::mem::size_of::<libc::statfs>() == std::mem::size_of::<abi::StatFs>());

macro_rules! statfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call (struct statfs has one layout).
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, out: *mut libc::statfs) -> c_int {
            match route(AT_FDCWD, path) {
                Route::Kernel(_, k) => {
                    kcall(nr::STATFS, [arg!(k.as_ptr()), arg!(out), 0, 0, 0, 0]) as c_int
                }
                r => libc_fn!($name, fn(*const c_char, *mut libc::statfs) -> c_int; r.host_path(path), out),
            }
        }
    };
}
statfs_hook!(statfs);
statfs_hook!(statfs64);

/// glibc's statvfs from the kernel's statfs.
fn to_statvfs(s: &abi::StatFs, out: *mut libc::statvfs) -> c_int {
    if out.is_null() {
        return fail(libc::EFAULT);
    }
    const ST_VALID: i64 = 0x20;
    // SAFETY: all-zero is a valid struct statvfs (integers only).
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    v.f_bsize = s.f_bsize as u64;
    v.f_frsize = if s.f_frsize != 0 {
        s.f_frsize
    } else {
        s.f_bsize
    } as u64;
    v.f_blocks = s.f_blocks;
    v.f_bfree = s.f_bfree;
    v.f_bavail = s.f_bavail;
    v.f_files = s.f_files;
    v.f_ffree = s.f_ffree;
    v.f_favail = s.f_ffree;
    v.f_fsid = u64::from(s.f_fsid[0] as u32) | (u64::from(s.f_fsid[1] as u32) << 32);
    v.f_flag = if s.f_flags & ST_VALID != 0 {
        (s.f_flags & !ST_VALID) as u64
    } else {
        0
    };
    v.f_namemax = s.f_namelen as u64;
    // SAFETY: the program's struct statvfs.
    unsafe { out.write_unaligned(v) };
    0
}

fn kstatvfs(nr: i64, arg: i64, out: *mut libc::statvfs) -> c_int {
    let mut s = abi::StatFs::default();
    if kcall(nr, [arg, arg!(&mut s as *mut abi::StatFs), 0, 0, 0, 0]) < 0 {
        return -1;
    }
    to_statvfs(&s, out)
}

macro_rules! statvfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, out: *mut libc::statvfs) -> c_int {
            match route(AT_FDCWD, path) {
                Route::Kernel(_, k) => kstatvfs(nr::STATFS, arg!(k.as_ptr()), out),
                r => libc_fn!($name, fn(*const c_char, *mut libc::statvfs) -> c_int; r.host_path(path), out),
            }
        }
    };
}
statvfs_hook!(statvfs);
statvfs_hook!(statvfs64);

macro_rules! fstatvfs_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fd: c_int, out: *mut libc::statvfs) -> c_int {
            if let Some(k) = fdtable::kernel_fd(fd) {
                return kstatvfs(nr::FSTATFS, k.into(), out);
            }
            libc_fn!($name, fn(c_int, *mut libc::statvfs) -> c_int; fd, out)
        }
    };
}
fstatvfs_hook!(fstatvfs);
fstatvfs_hook!(fstatvfs64);

//! Program memory in another process: the user copies of a kernel that
//! serves the processes of a tree from a server process
//! (docs/process-tree.md). The address-space cookie of such a process's
//! kernel mm is its host pid; `process_vm_readv`/`process_vm_writev` move
//! the bytes and stop at the first page they cannot reach, which the
//! kernel then reports as `EFAULT` (or a short count), as for a local
//! pointer into an unmapped page.

use std::ffi::{c_ulong, c_void};

/// The cookie of a process not yet known (a fork whose child has not
/// reported in): every copy moves nothing.
pub const NO_PROCESS: *mut c_void = usize::MAX as *mut c_void;

/// The address-space cookie for host process `pid`.
pub fn cookie(pid: i32) -> *mut c_void {
    pid as usize as *mut c_void
}

/// The host pid a cookie names, if it names one.
fn pid_of(as_: *mut c_void) -> Option<libc::pid_t> {
    let v = as_ as usize;
    (v > 0 && v <= i32::MAX as usize).then_some(v as libc::pid_t)
}

/// Which way a copy goes.
#[derive(Clone, Copy)]
enum Way {
    FromProcess,
    ToProcess,
}

/// Moves `n` bytes between our `local` and the process's `remote`,
/// returning how many were not moved.
///
/// # Safety
/// `local` is valid for `n` bytes (writable for `FromProcess`).
unsafe fn transfer(
    as_: *mut c_void,
    way: Way,
    local: *mut c_void,
    remote: usize,
    n: usize,
) -> usize {
    let Some(pid) = pid_of(as_) else {
        return n;
    };
    let mut done = 0usize;
    while done < n {
        let l = libc::iovec {
            iov_base: (local as usize + done) as *mut c_void,
            iov_len: n - done,
        };
        let r = libc::iovec {
            iov_base: (remote + done) as *mut c_void,
            iov_len: n - done,
        };
        // SAFETY: one local iovec within the caller's buffer, one remote
        // iovec the host checks against the other process's mappings.
        let moved = unsafe {
            match way {
                Way::FromProcess => libc::process_vm_readv(pid, &l, 1, &r, 1, 0),
                Way::ToProcess => libc::process_vm_writev(pid, &l, 1, &r, 1, 0),
            }
        };
        if moved <= 0 {
            break;
        }
        done += moved as usize;
    }
    n - done
}

/// `user_read` for another process: `n` bytes at its `src` into `dst`.
///
/// # Safety
/// `dst` is valid for `n` bytes.
pub unsafe fn read(as_: *mut c_void, dst: *mut c_void, src: *const c_void, n: c_ulong) -> c_ulong {
    // SAFETY: the caller's contract.
    unsafe { transfer(as_, Way::FromProcess, dst, src as usize, n as usize) as c_ulong }
}

/// `user_write` for another process: `n` bytes of `src` to its `dst`.
///
/// # Safety
/// `src` is valid for `n` bytes.
pub unsafe fn write(as_: *mut c_void, dst: *mut c_void, src: *const c_void, n: c_ulong) -> c_ulong {
    // SAFETY: the caller's contract; the local side is only read.
    unsafe {
        transfer(
            as_,
            Way::ToProcess,
            src as *mut c_void,
            dst as usize,
            n as usize,
        ) as c_ulong
    }
}

/// `user_clear` for another process: zeroes `n` bytes at its `dst`.
///
/// # Safety
/// None of ours: only the other process's memory is written (the host
/// checks it).
pub unsafe fn clear(as_: *mut c_void, dst: *mut c_void, n: c_ulong) -> c_ulong {
    static ZEROS: [u8; 4096] = [0; 4096];
    let n = n as usize;
    let mut done = 0usize;
    while done < n {
        let chunk = (n - done).min(ZEROS.len());
        // SAFETY: ZEROS is valid for `chunk` bytes and only read.
        let left = unsafe {
            transfer(
                as_,
                Way::ToProcess,
                ZEROS.as_ptr() as *mut c_void,
                dst as usize + done,
                chunk,
            )
        };
        done += chunk - left;
        if left != 0 {
            break;
        }
    }
    (n - done) as c_ulong
}

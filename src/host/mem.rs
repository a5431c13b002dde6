//! Memory for the kernel: small host objects from malloc, and its RAM as
//! one anonymous mapping (zero-filled, committed only when touched).

use std::ffi::{c_ulong, c_void};
use std::ptr;

pub(super) unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
    // SAFETY: malloc has no preconditions.
    unsafe { libc::malloc(size as usize) }
}

/// # Safety
/// `p` comes from `mem_alloc` (or is null).
pub(super) unsafe extern "C" fn mem_free(p: *mut c_void) {
    // SAFETY: see the function's contract.
    unsafe { libc::free(p) }
}

pub(super) unsafe extern "C" fn page_alloc(size: c_ulong) -> *mut c_void {
    // SAFETY: an anonymous private mapping with no fixed address.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p
    }
}

/// # Safety
/// `p` and `size` are those of one `page_alloc` call, not used again.
pub(super) unsafe extern "C" fn page_free(p: *mut c_void, size: c_ulong) {
    // SAFETY: see the function's contract.
    unsafe { libc::munmap(p, size as usize) };
}

//! Memory for the kernel: small host objects from malloc, and its RAM as
//! one anonymous mapping (zero-filled, committed only when touched).

use std::ffi::{c_ulong, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The kernel's RAM region (host address, length), once allocated.
static RAM_START: AtomicUsize = AtomicUsize::new(0);
static RAM_LEN: AtomicUsize = AtomicUsize::new(0);

/// Where the kernel's RAM is: (host address, length in bytes). Its first
/// byte is guest-physical address `virtio::RAM_PHYS_BASE`.
pub fn kernel_ram() -> Option<(usize, usize)> {
    let start = RAM_START.load(Ordering::Acquire);
    (start != 0).then(|| (start, RAM_LEN.load(Ordering::Acquire)))
}

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
        return ptr::null_mut();
    }
    // The kernel allocates its RAM once, at boot.
    RAM_LEN.store(size as usize, Ordering::Release);
    RAM_START.store(p as usize, Ordering::Release);
    p
}

/// # Safety
/// `p` and `size` are those of one `page_alloc` call, not used again.
pub(super) unsafe extern "C" fn page_free(p: *mut c_void, size: c_ulong) {
    // The kernel is frozen; no device may touch its RAM past this point.
    super::iomem::shutdown_all();
    if RAM_START.load(Ordering::Acquire) == p as usize {
        RAM_START.store(0, Ordering::Release);
    }
    // SAFETY: see the function's contract.
    unsafe { libc::munmap(p, size as usize) };
}

//! Which descriptor is whose. A kernel descriptor is shown to the program
//! under the number of a host placeholder (an eventfd that never becomes
//! ready), so host and kernel numbers can never collide, whatever the
//! program's number of host descriptors; the table maps placeholder to
//! kernel descriptor. Lookups are one atomic load.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::real::real;

/// Host descriptor numbers the table covers.
const MAX_FDS: usize = 1 << 16;

/// `MAP[host] = kernel + 1`, 0 for a host descriptor.
static MAP: [AtomicI32; MAX_FDS] = [const { AtomicI32::new(0) }; MAX_FDS];

/// The kernel descriptor behind host descriptor `fd`, if it is one.
#[inline]
pub fn kernel_fd(fd: c_int) -> Option<i32> {
    let slot = MAP.get(usize::try_from(fd).ok()?)?;
    match slot.load(Ordering::Acquire) {
        0 => None,
        k => Some(k - 1),
    }
}

/// Gives kernel descriptor `kfd` a host number; Err(errno) if none is left.
pub fn insert(kfd: i32) -> Result<c_int, i32> {
    let Some(eventfd) = real().eventfd else {
        return Err(libc::ENOSYS);
    };
    // SAFETY: eventfd has no pointer arguments.
    let hfd = unsafe { eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if hfd < 0 {
        // SAFETY: reads this thread's errno.
        return Err(unsafe { *libc::__errno_location() });
    }
    match MAP.get(hfd as usize) {
        Some(slot) => {
            slot.store(kfd + 1, Ordering::Release);
            Ok(hfd)
        }
        None => {
            if let Some(close) = real().close {
                // SAFETY: closes the placeholder just made.
                unsafe { close(hfd) };
            }
            Err(libc::EMFILE)
        }
    }
}

/// Forgets host descriptor `fd`; returns the kernel descriptor it stood for.
pub fn remove(fd: c_int) -> Option<i32> {
    let slot = MAP.get(usize::try_from(fd).ok()?)?;
    match slot.swap(0, Ordering::AcqRel) {
        0 => None,
        k => Some(k - 1),
    }
}

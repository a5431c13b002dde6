//! System calls into the kernel: numbers and structures of the kernel's
//! generic 64-bit ABI (not the host's), and safe typed wrappers.
//!
//! Every wrapper may be called from any thread, before boot (`ENODEV`) and
//! after halt (`ESHUTDOWN`) too. File descriptors are the kernel's own
//! numbers, plain `i32`s that nothing closes implicitly.

pub mod abi;
mod errno;
mod file;
mod fs;
mod msg;
mod net;
mod notify;
mod poll;
mod process;
pub mod wire;

pub use errno::Errno;
pub use file::*;
pub use fs::*;
pub use msg::*;
pub use net::*;
pub use notify::*;
pub use poll::*;
pub use process::*;

use crate::sys;

/// System-call numbers of the kernel we built (from its `unistd_64.h`),
/// plus lkl's own (`arch/lkl/include/uapi/asm/unistd.h`).
pub mod nr {
    include!(concat!(env!("OUT_DIR"), "/syscall_nr.rs"));

    /// Registers a virtio-mmio device after boot: (base, size, irq) -> device id.
    pub const VIRTIO_MMIO_DEVICE_ADD: i64 = 244;
}

/// Where calls go instead of the kernel in this process: a kernel in
/// another process (the hijack's process-tree mode). Set once, before any
/// call; `raw` then passes every call to it.
pub type Route = unsafe fn(i64, [i64; 6]) -> Result<i64, Errno>;

static ROUTE: std::sync::OnceLock<Route> = std::sync::OnceLock::new();

/// Sends every call of this process through `route` from now on.
///
/// # Safety
/// `route` must honour [`raw`]'s contract for every call.
pub unsafe fn set_route(route: Route) {
    let _ = ROUTE.set(route);
}

/// Calls system call `nr` with six raw arguments.
///
/// # Safety
/// The arguments must be valid for that call: every pointer argument must
/// point to memory the kernel may read or write as the call defines.
pub unsafe fn raw(nr: i64, mut args: [i64; 6]) -> Result<i64, Errno> {
    if let Some(route) = ROUTE.get() {
        // SAFETY: the caller's contract, which the route honours.
        return unsafe { route(nr, args) };
    }
    if sys::forked() {
        return Err(Errno::ESHUTDOWN);
    }
    // SAFETY: `args` has the six slots lkl_syscall reads; the caller
    // vouches for what they point to.
    let r = unsafe { sys::lkl_syscall(nr, args.as_mut_ptr()) };
    if (-4095..0).contains(&r) {
        Err(Errno(-r as i32))
    } else {
        Ok(r)
    }
}

/// A path for the kernel, NUL-terminated. Any bytes but NUL may be in a
/// Linux file name, so anything that is an `OsStr` (`&str`, `&Path`, ...)
/// is accepted; an inner NUL is `EINVAL`.
fn cpath(path: impl AsRef<std::ffi::OsStr>) -> Result<std::ffi::CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_ref().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// A pointer the kernel reads through, as a system-call argument.
fn ptr<T>(p: *const T) -> i64 {
    p as usize as i64
}

/// A pointer the kernel may write through, as a system-call argument.
fn ptr_mut<T>(p: *mut T) -> i64 {
    p as usize as i64
}

//! Host notifiers on kernel files (lkl's calls 245/246): a kernel file's
//! readiness signalled on a host eventfd, so one host poll/epoll can wait
//! on host and kernel descriptors together, with no thread per wait.
//!
//! Protocol (race-free): drain the eventfd, harvest kernel readiness with a
//! zero timeout (e.g. `epoll_wait(kep, .., 0)`), and only then block on
//! the host side. A level-triggered item the kernel keeps ready does not
//! signal again, so never block without harvesting first.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{raw, Errno};

/// `__NR_lkl_notifier_add`, `__NR_lkl_notifier_del`.
const NOTIFIER_ADD: i64 = 245;
const NOTIFIER_DEL: i64 = 246;

/// Registers `cb(cookie)` to run when kernel file `fd` is woken with one
/// of `events` (EPOLLERR and EPOLLHUP always count). Returns its id.
///
/// # Safety
/// `cb` runs on whichever thread gives the kernel's CPU up next, with the
/// CPU held: it must not block, must not call into the kernel, and
/// `cookie` must stay valid until [`notifier_del`] returns.
pub unsafe fn notifier_add(
    fd: i32,
    events: u32,
    cb: unsafe extern "C" fn(*mut c_void),
    cookie: *mut c_void,
) -> Result<i32, Errno> {
    // SAFETY: the kernel stores the function and cookie; the caller vouches
    // for them.
    unsafe {
        raw(
            NOTIFIER_ADD,
            [
                fd as i64,
                events as i64,
                cb as usize as i64,
                cookie as usize as i64,
                0,
                0,
            ],
        )
    }
    .map(|id| id as i32)
}

/// Removes a notifier; its callback does not run after this returns.
pub fn notifier_del(id: i32) -> Result<(), Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(NOTIFIER_DEL, [id as i64, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Bumps the eventfd in `cookie` (its raw fd number). Async-signal-safe.
unsafe extern "C" fn bump_eventfd(cookie: *mut c_void) {
    let one: u64 = 1;
    // SAFETY: an 8-byte write from a local to the eventfd the notifier
    // owns; EAGAIN (counter saturated) is fine, the fd is already readable.
    unsafe { libc::write(cookie as usize as RawFd, (&one as *const u64).cast(), 8) };
}

/// A kernel file's readiness on a host eventfd of its own.
#[derive(Debug)]
pub struct EventfdNotifier {
    id: i32,
    eventfd: OwnedFd,
}

impl EventfdNotifier {
    /// Watches kernel file `fd` for `events` (EPOLLIN...).
    pub fn new(fd: i32, events: u32) -> Result<Self, Errno> {
        // SAFETY: eventfd has no pointer arguments.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EMFILE),
            ));
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        // SAFETY: bump_eventfd neither blocks nor calls into the kernel;
        // the eventfd outlives the notifier (Drop deletes it first).
        let id = unsafe { notifier_add(fd, events, bump_eventfd, efd as usize as *mut c_void) }?;
        Ok(EventfdNotifier { id, eventfd })
    }

    /// Empties the eventfd (step one of the waiting protocol).
    pub fn drain(&self) {
        let mut v = 0u64;
        // SAFETY: an 8-byte read into a local from our non-blocking eventfd.
        unsafe { libc::read(self.eventfd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for EventfdNotifier {
    fn as_raw_fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }
}

impl Drop for EventfdNotifier {
    fn drop(&mut self) {
        let _ = notifier_del(self.id);
    }
}

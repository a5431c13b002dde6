//! Which descriptor is whose. A kernel descriptor is shown to the program
//! under the number of a host placeholder (an eventfd that never becomes
//! ready), so host and kernel numbers can never collide, whatever the
//! program's number of host descriptors; the table maps placeholder to
//! kernel descriptor. Lookups are one atomic load.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::hijack::host::{self, errno, libc_fn};

/// Host descriptor numbers the table covers.
pub const MAX_FDS: usize = 1 << 16;

/// `MAP[host] = kernel + 1`, 0 for a host descriptor.
static MAP: [AtomicI32; MAX_FDS] = [const { AtomicI32::new(0) }; MAX_FDS];

/// `NOTIFIER[host]`: the kernel notifier that bumps the placeholder
/// eventfd when the kernel file is woken (0: none yet). Registered the first
/// time the descriptor is waited on together with host descriptors.
static NOTIFIER: [AtomicI32; MAX_FDS] = [const { AtomicI32::new(0) }; MAX_FDS];

/// Bumps the placeholder eventfd whose number is the cookie. Runs in the
/// kernel's CPU hand-off: no blocking, no kernel calls. Nothing drains a
/// placeholder: each waiter hears of every bump through an edge-triggered
/// epoll of its own (fd/poll.rs's doorbell), so none takes another's.
pub(crate) unsafe extern "C" fn bump(cookie: *mut std::ffi::c_void) {
    let one: u64 = 1;
    // SAFETY: an 8-byte write from a local to a non-blocking eventfd; a full
    // counter (EAGAIN) already means readable.
    unsafe {
        libc::syscall(
            libc::SYS_write,
            cookie as usize as c_int,
            &one as *const u64,
            8,
        )
    };
}

/// Makes host descriptor `fd` (a kernel one) signal its placeholder when the
/// kernel file is woken with any event. Idempotent.
pub fn ensure_notifier(fd: c_int) -> Result<(), i32> {
    let Some(kfd) = kernel_fd(fd) else {
        return Ok(());
    };
    let slot = &NOTIFIER[fd as usize];
    if slot.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    let events = (libc::POLLIN
        | libc::POLLOUT
        | libc::POLLPRI
        | libc::POLLERR
        | libc::POLLHUP
        | libc::POLLRDHUP) as u32;
    // SAFETY: `bump` neither blocks nor calls into the kernel; the cookie is
    // the placeholder's number, which lives until close() deletes the
    // notifier first.
    let id = match unsafe {
        lkl::syscall::notifier_add(kfd, events, bump, fd as usize as *mut std::ffi::c_void)
    } {
        Ok(id) => id,
        // A file poll cannot wait on (a regular file on a disk) is always
        // ready: the kernel's check says so and the wait never blocks on it.
        Err(lkl::syscall::Errno::EPERM) => return Ok(()),
        Err(e) => return Err(e.0),
    };
    if slot
        .compare_exchange(0, id, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread registered one first.
        let _ = lkl::syscall::notifier_del(id);
    }
    Ok(())
}

/// The kernel descriptor behind host descriptor `fd`, if it is one.
#[inline]
pub fn kernel_fd(fd: c_int) -> Option<i32> {
    let slot = MAP.get(usize::try_from(fd).ok()?)?;
    match slot.load(Ordering::Acquire) {
        0 => None,
        k => Some(k - 1),
    }
}

/// Makes host number `target` stand for kernel descriptor `kfd` (dup2 onto
/// it): a fresh placeholder is duplicated onto `target`, replacing whatever
/// host descriptor was there.
pub fn insert_at(kfd: i32, target: c_int, cloexec: bool) -> Result<c_int, i32> {
    let hfd = insert(kfd)?;
    if hfd == target {
        return Ok(hfd);
    }
    let Some(dup3) = libc_fn!(dup3, fn(c_int, c_int, c_int) -> c_int) else {
        return Err(libc::ENOSYS);
    };
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    move_placeholder(kfd, hfd, libc::EBADF, || {
        // SAFETY: duplicates our own placeholder onto the number the
        // program chose.
        unsafe { dup3(hfd, target, flags) }
    })
}

/// Gives kernel descriptor `kfd` a host number at least `min` (F_DUPFD).
pub fn insert_min(kfd: i32, min: c_int, cloexec: bool) -> Result<c_int, i32> {
    let hfd = insert(kfd)?;
    if hfd >= min {
        return Ok(hfd);
    }
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    move_placeholder(kfd, hfd, libc::EMFILE, || {
        // SAFETY: duplicates our own placeholder to a number >= min.
        unsafe { libc::syscall(libc::SYS_fcntl, hfd, cmd, min) as c_int }
    })
}

/// Moves kernel descriptor `kfd` from its fresh placeholder `hfd` to the
/// duplicate of it that `dup` makes; `hfd` is closed. `beyond`: the error
/// for a duplicate numbered beyond the table.
fn move_placeholder(
    kfd: i32,
    hfd: c_int,
    beyond: i32,
    dup: impl FnOnce() -> c_int,
) -> Result<c_int, i32> {
    remove(hfd);
    let r = dup();
    let e = errno();
    host::close(hfd);
    if r < 0 {
        return Err(e);
    }
    match MAP.get(r as usize) {
        Some(slot) => {
            slot.store(kfd + 1, Ordering::Release);
            Ok(r)
        }
        None => Err(beyond),
    }
}

/// Gives kernel descriptor `kfd` a host number; Err(errno) if none is left.
pub fn insert(kfd: i32) -> Result<c_int, i32> {
    let hfd = host::new_eventfd()?;
    match MAP.get(hfd as usize) {
        Some(slot) => {
            slot.store(kfd + 1, Ordering::Release);
            Ok(hfd)
        }
        None => {
            host::close(hfd);
            Err(libc::EMFILE)
        }
    }
}

/// Forgets host descriptor `fd`; returns the kernel descriptor it stood for.
pub fn remove(fd: c_int) -> Option<i32> {
    let idx = usize::try_from(fd).ok()?;
    let notifier = NOTIFIER.get(idx)?.swap(0, Ordering::AcqRel);
    if notifier != 0 {
        let _ = lkl::syscall::notifier_del(notifier);
    }
    let slot = MAP.get(idx)?;
    match slot.swap(0, Ordering::AcqRel) {
        0 => None,
        k => Some(k - 1),
    }
}

/// A kernel descriptor number no kernel file ever has (beyond fs.nr_open):
/// calls on a retired descriptor get EBADF from the kernel.
const RETIRED: i32 = i32::MAX - 1;

/// At exit: returns the kernel descriptor behind `fd` for closing, but
/// leaves `fd` marked as a kernel one (standing for no kernel file), so
/// another thread's call on it still goes the kernel's way (and stops
/// there, see `lifecycle::park_if_exiting`) instead of reaching the host
/// placeholder.
pub fn retire(fd: c_int) -> Option<i32> {
    let idx = usize::try_from(fd).ok()?;
    let notifier = NOTIFIER.get(idx)?.swap(0, Ordering::AcqRel);
    if notifier != 0 {
        let _ = lkl::syscall::notifier_del(notifier);
    }
    match MAP.get(idx)?.swap(RETIRED + 1, Ordering::AcqRel) {
        0 => {
            MAP[idx].store(0, Ordering::Release);
            None
        }
        k if k == RETIRED + 1 => None,
        k => Some(k - 1),
    }
}

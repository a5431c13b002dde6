//! Which descriptor is whose. A kernel descriptor is shown to the program
//! under the number of a host placeholder (an eventfd that never becomes
//! ready), so host and kernel numbers can never collide, whatever the
//! program's number of host descriptors; the table maps placeholder to
//! kernel descriptor. Lookups are one atomic load.
//!
//! Also here: `close` of a kernel descriptor from a signal handler, which
//! only retires the number (atomics) and leaves the rest to the next kernel
//! call outside a handler (`close_later`, `finish_closes`).

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::hijack::host::{self, errno, libc_fn};
use crate::hijack::lifecycle;
use crate::hijack::tree;

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
        crate::hijack::host::host_syscall!(
            libc::SYS_write,
            cookie as usize as c_int,
            &one as *const u64,
            8,
        )
    };
}

/// A kernel notifier that bumps eventfd `efd` (ours) when kernel
/// descriptor `kfd` is woken with one of `events`: in this process's
/// kernel, or in the tree's kernel server (which bumps its copy of `efd`).
pub fn notifier_add(kfd: i32, events: u32, efd: c_int) -> Result<i32, lkl::syscall::Errno> {
    if tree::client() {
        return tree::notifier_add(kfd, events, efd);
    }
    // SAFETY: `bump` neither blocks nor calls into the kernel; the cookie
    // is the eventfd's number, which the caller keeps open until it
    // deletes the notifier.
    unsafe { lkl::syscall::notifier_add(kfd, events, bump, efd as usize as *mut std::ffi::c_void) }
}

/// Deletes a notifier made by [`notifier_add`].
pub fn notifier_del(id: i32) {
    if tree::client() {
        tree::notifier_del(id);
    } else {
        let _ = lkl::syscall::notifier_del(id);
    }
}

/// In a forked child of a tree's process: the notifiers are the parent's
/// (deleting one is the parent's business); the child makes its own.
pub fn after_fork_child() {
    for slot in NOTIFIER.iter() {
        slot.store(0, Ordering::Release);
    }
}

/// Makes host number `hfd`, a placeholder kept across an exec, stand for
/// kernel descriptor `kfd` again (in the new image). False if `hfd` is not
/// open.
pub fn restore(hfd: c_int, kfd: i32) -> bool {
    // SAFETY: the host's fcntl on a number, no pointers.
    let open = unsafe { libc::syscall(libc::SYS_fcntl, hfd, libc::F_GETFD) } >= 0;
    match MAP.get(hfd as usize) {
        Some(slot) if open => {
            slot.store(kfd + 1, Ordering::Release);
            true
        }
        _ => false,
    }
}

/// The kernel descriptors an exec keeps: those whose placeholder is not
/// close-on-exec, as (host number, kernel number).
pub fn kept_across_exec() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for (hfd, slot) in MAP.iter().enumerate() {
        let v = slot.load(Ordering::Acquire);
        if v == 0 || v == RETIRED + 1 {
            continue;
        }
        // SAFETY: the host's fcntl on our placeholder, no pointers.
        let flags = unsafe { libc::syscall(libc::SYS_fcntl, hfd as c_int, libc::F_GETFD) };
        if flags >= 0 && flags & i64::from(libc::FD_CLOEXEC) == 0 {
            out.push((hfd as i32, v - 1));
        }
    }
    out
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
    let id = match notifier_add(kfd, events, fd) {
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
        notifier_del(id);
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
        return Ok(keep_across_exec(hfd, cloexec));
    }
    let Some(dup3) = libc_fn!(dup3, fn(c_int, c_int, c_int) -> c_int) else {
        return Err(libc::ENOSYS);
    };
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    move_placeholder(kfd, hfd, libc::EBADF, || {
        // SAFETY: duplicates our own placeholder onto the number the
        // program chose.
        crate::hijack::tier::gate::allowed(|| unsafe { dup3(hfd, target, flags) })
    })
}

/// Gives kernel descriptor `kfd` a host number at least `min` (F_DUPFD).
pub fn insert_min(kfd: i32, min: c_int, cloexec: bool) -> Result<c_int, i32> {
    let hfd = insert(kfd)?;
    if hfd >= min {
        return Ok(keep_across_exec(hfd, cloexec));
    }
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    move_placeholder(kfd, hfd, libc::EMFILE, || {
        // SAFETY: duplicates our own placeholder to a number >= min.
        unsafe { crate::hijack::host::host_syscall!(libc::SYS_fcntl, hfd, cmd, min) as c_int }
    })
}

/// A fresh placeholder (close-on-exec) that landed on the number asked
/// for: without close-on-exec unless `cloexec`, as the host's `dup2` or
/// `F_DUPFD` leaves its duplicate (a shell's `dup2` onto a stdout it had
/// just closed must survive its exec).
fn keep_across_exec(hfd: c_int, cloexec: bool) -> c_int {
    if !cloexec {
        // SAFETY: the host's fcntl on our own placeholder.
        unsafe { crate::hijack::host::host_syscall!(libc::SYS_fcntl, hfd, libc::F_SETFD, 0) };
    }
    hfd
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
        notifier_del(notifier);
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
        notifier_del(notifier);
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

/// True if kernel descriptor `kfd` (as `kernel_fd` gave it) is a retired
/// one: at exit, or closed by a signal handler and not yet released.
#[inline]
pub fn retired(kfd: i32) -> bool {
    kfd == RETIRED
}

/// A close left for later: `state` FREE, BUSY (being written or finished)
/// or READY.
struct Later {
    state: AtomicI32,
    fd: AtomicI32,
    kfd: AtomicI32,
    notifier: AtomicI32,
}

const FREE: i32 = 0;
const BUSY: i32 = 1;
const READY: i32 = 2;
/// Closes signal handlers may leave pending at once.
const LATER_SLOTS: usize = 16;

static LATER: [Later; LATER_SLOTS] = [const {
    Later {
        state: AtomicI32::new(FREE),
        fd: AtomicI32::new(0),
        kfd: AtomicI32::new(0),
        notifier: AtomicI32::new(0),
    }
}; LATER_SLOTS];

/// READY slots (one load keeps `finish_closes` off every kernel call).
static LATER_COUNT: AtomicUsize = AtomicUsize::new(0);

/// What the layers above this table keep per kernel descriptor (its epoll
/// memberships, its packet ring), to drop before a close left for later
/// is finished. The table is below them, so it cannot name them: init
/// gives it the function (fd/control.rs's `forget_users`) before `main`.
static FORGET_USERS: OnceLock<fn(c_int)> = OnceLock::new();

/// Sets what `finish_closes` drops above the table first (init only).
pub fn set_forget_users(f: fn(c_int)) {
    let _ = FORGET_USERS.set(f);
}

/// `close` of kernel descriptor `fd` from a signal handler, with atomics
/// only: the full close takes locks the interrupted thread may hold (the
/// epoll and packet tables), allocates, and makes kernel calls (notifier,
/// close) that cannot be made while the same thread is inside a kernel
/// call. So `fd` is retired at once (every call on it now fails with
/// EBADF) and the rest is done by the next kernel call of a thread outside
/// a handler (`finish_closes`: the interrupted call's return, at the
/// latest). Until then the placeholder keeps the number, so nothing else
/// can be given it, and the notifier keeps bumping our own eventfd. With
/// every slot taken the kernel file stays open until exit.
pub fn close_later(fd: c_int) {
    let Some(idx) = usize::try_from(fd).ok().filter(|&i| i < MAX_FDS) else {
        return;
    };
    let kfd = match MAP[idx].swap(RETIRED + 1, Ordering::AcqRel) {
        0 => {
            MAP[idx].store(0, Ordering::Release);
            return;
        }
        k if k == RETIRED + 1 => return,
        k => k - 1,
    };
    for slot in &LATER {
        if slot
            .state
            .compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            slot.fd.store(fd, Ordering::Relaxed);
            slot.kfd.store(kfd, Ordering::Relaxed);
            slot.notifier
                .store(NOTIFIER[idx].swap(0, Ordering::AcqRel), Ordering::Relaxed);
            slot.state.store(READY, Ordering::Release);
            LATER_COUNT.fetch_add(1, Ordering::AcqRel);
            return;
        }
    }
}

/// Finishes the closes signal handlers left (see `close_later`). Not for a
/// signal handler: signals::call runs it around every kernel call made
/// outside one.
#[inline]
pub fn finish_closes() {
    if LATER_COUNT.load(Ordering::Acquire) != 0 {
        finish_pending();
    }
}

#[cold]
fn finish_pending() {
    // At exit every kernel descriptor is closed anyway, and the retired
    // numbers must stay retired.
    if lifecycle::exiting() {
        return;
    }
    for slot in &LATER {
        if slot
            .state
            .compare_exchange(READY, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        LATER_COUNT.fetch_sub(1, Ordering::AcqRel);
        let fd = slot.fd.load(Ordering::Relaxed);
        let kfd = slot.kfd.load(Ordering::Relaxed);
        let notifier = slot.notifier.load(Ordering::Relaxed);
        if notifier != 0 {
            let _ = lkl::syscall::notifier_del(notifier);
        }
        // Still ours, unless a dup2 onto the number meanwhile dropped it
        // (and what the layers above kept) and put something else there.
        let slot_of_fd = &MAP[fd as usize];
        let ours = slot_of_fd.load(Ordering::Acquire) == RETIRED + 1;
        if ours {
            if let Some(forget) = FORGET_USERS.get() {
                forget(fd);
            }
        }
        // SAFETY: closes the kernel descriptor nothing refers to any more.
        let _ = unsafe { lkl::syscall::raw(lkl::syscall::nr::CLOSE, [kfd.into(), 0, 0, 0, 0, 0]) };
        // A close of the number again meanwhile got EBADF and kept it:
        // release it now.
        if ours
            && slot_of_fd
                .compare_exchange(RETIRED + 1, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // The placeholder that stood for `kfd`.
            host::close(fd);
        }
        slot.state.store(FREE, Ordering::Release);
    }
}

//! poll, select, ppoll and pselect over host and kernel descriptors
//! together. Only host descriptors: libc's call (or the host's system call,
//! with a copy of the timeout as glibc makes). Only kernel ones: one ppoll
//! in the kernel. Both: the mixed wait (`wait`), harvest -> doorbell ->
//! block with no thread and no polling loop, the caller's signal mask
//! applied atomically around the blocking step. Emulated packet rings
//! among the descriptors are filled around poll's wait (net/packet.rs).
//!
//! Allocation-free (so callable from a signal handler): poll, select and
//! pselect on host descriptors alone, poll on up to 64 kernel descriptors
//! alone. The mixed wait allocates (docs/hijack-signals.md).

use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use lkl::syscall::{abi, nr};

use crate::hijack::call::{arg, fortify, kcall, SIGSET_SIZE};
use crate::hijack::fdtable;
use crate::hijack::host::{self, errno, fail, libc_fn};
use crate::hijack::net::packet;

/// # Safety
/// libc's contract for `poll`. Emulated packet rings among the
/// descriptors are filled around the wait (net/packet.rs).
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    if too_many_fds(nfds) {
        return fail(libc::EINVAL);
    }
    if !packet::any() || fds.is_null() || nfds == 0 {
        // SAFETY: same contract.
        return unsafe { poll_descriptors(fds, nfds, timeout) };
    }
    // SAFETY: the program passes `nfds` pollfds at `fds`.
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    let now = packet::before_poll(set);
    // SAFETY: same contract.
    let r = unsafe { poll_descriptors(fds, nfds, if now { 0 } else { timeout }) };
    if r < 0 {
        return r;
    }
    // SAFETY: as above; poll_descriptors has returned.
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    r + packet::after_poll(set)
}

/// `poll` over host and kernel descriptors.
unsafe fn poll_descriptors(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let set = if fds.is_null() || nfds == 0 {
        &mut [][..]
    } else {
        // SAFETY: the program passes `nfds` pollfds at `fds` (not null).
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    let kernel = set
        .iter()
        .filter(|p| fdtable::kernel_fd(p.fd).is_some())
        .count();
    if kernel == 0 {
        return libc_fn!(poll, fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int; fds, nfds, timeout);
    }
    if kernel == set.len() {
        // All kernel descriptors: one ppoll in the kernel, on kernel numbers
        // (the program's numbers kept aside; on the stack for a usual set,
        // as poll is async-signal-safe).
        let mut small = [0 as c_int; 64];
        let mut large = Vec::new();
        let host: &mut [c_int] = if set.len() <= small.len() {
            &mut small[..set.len()]
        } else {
            large.resize(set.len(), 0);
            &mut large
        };
        for (h, p) in host.iter_mut().zip(set.iter()) {
            *h = p.fd;
        }
        for p in set.iter_mut() {
            p.fd = fdtable::kernel_fd(p.fd).unwrap_or(-1);
        }
        let ts = (timeout >= 0).then(|| lkl::syscall::abi::Timespec {
            tv_sec: i64::from(timeout / 1000),
            tv_nsec: i64::from(timeout % 1000) * 1_000_000,
        });
        let tsp = ts.as_ref().map_or(0, |t| arg!(t as *const _));
        let r = kcall(nr::PPOLL, [arg!(fds), nfds as i64, tsp, 0, 8, 0]);
        for (p, h) in set.iter_mut().zip(host.iter()) {
            p.fd = *h;
        }
        return r as c_int;
    }
    // Host and kernel descriptors together, without a thread or a polling
    // loop (`wait`: harvest both sides, then block on a doorbell of its own).
    let t = (timeout >= 0).then(|| std::time::Duration::from_millis(timeout as u64));
    wait(set, t, std::ptr::null())
}

/// # Safety
/// libc's contract for `select`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    let nfds = nfds.clamp(0, libc::FD_SETSIZE as c_int);
    if !any_kernel_fd(nfds, readfds, writefds, exceptfds) {
        return libc_fn!(select, fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int; nfds, readfds, writefds, exceptfds, timeout);
    }
    let mut list = fdsets_to_pollfds(nfds, readfds, writefds, exceptfds);
    let t = if timeout.is_null() {
        None
    } else {
        // SAFETY: the program's timeval.
        let tv = unsafe { timeout.read() };
        if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
            return fail(libc::EINVAL);
        }
        Some(std::time::Duration::new(
            tv.tv_sec as u64,
            tv.tv_usec as u32 * 1000,
        ))
    };
    let start = std::time::Instant::now();
    if wait(&mut list, t, std::ptr::null()) < 0 {
        return -1;
    }
    let count = pollfds_to_fdsets(&list, readfds, writefds, exceptfds);
    if let Some(t) = t {
        // Linux's select leaves the time not slept in *timeout.
        let left = t.saturating_sub(start.elapsed());
        // SAFETY: the program's timeval.
        unsafe {
            (*timeout).tv_sec = left.as_secs() as libc::time_t;
            (*timeout).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    count
}

/// # Safety
/// glibc's contract for `__poll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: c_int,
    fdslen: usize,
) -> c_int {
    fortify(
        (nfds as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()),
        fdslen,
    );
    // SAFETY: same contract as poll once the length is checked.
    unsafe { poll(fds, nfds, timeout) }
}

/// A waiter's own wake-up channel over kernel entries' placeholders: a
/// host epoll holding each placeholder edge-triggered. Every bump of a
/// placeholder (its kernel file woke) queues an event in every such epoll
/// that holds it, and only this waiter takes events out of its own. The
/// placeholder itself is shared by every thread polling that descriptor:
/// a waiter that drained it to learn of a wake-up took that wake-up from
/// the others, which then slept on through readiness meant for them (one
/// thread polling a socket for POLLIN, another for POLLOUT). So nothing
/// drains a placeholder any more: its count only grows, and what rings is
/// each new bump, queued by the edge-triggered epoll.
struct Doorbell(c_int);

impl Doorbell {
    /// Made before the waiter's last check ahead of blocking: a bump after
    /// this is never lost. Placeholders bumped before (all that ever woke)
    /// are queued by the adding; `clear` takes those out before the check.
    fn new(set: &[libc::pollfd]) -> Result<Doorbell, i32> {
        // SAFETY: no pointer arguments.
        let ep = unsafe {
            crate::hijack::host::host_syscall!(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC)
        } as c_int;
        if ep < 0 {
            return Err(errno());
        }
        let bell = Doorbell(ep);
        for p in set {
            if fdtable::kernel_fd(p.fd).is_none() {
                continue;
            }
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: p.fd as u64,
            };
            // SAFETY: our epoll, the placeholder and our epoll_event.
            let r = unsafe {
                crate::hijack::host::host_syscall!(
                    libc::SYS_epoll_ctl,
                    ep,
                    libc::EPOLL_CTL_ADD,
                    p.fd,
                    &mut ev as *mut libc::epoll_event,
                )
            };
            // A descriptor listed twice is in already.
            if r < 0 && errno() != libc::EEXIST {
                return Err(errno());
            }
        }
        bell.clear();
        Ok(bell)
    }

    /// Takes the queued events out (edge-triggered: each is reported once).
    fn clear(&self) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
        // SAFETY: our epoll and an array of evs.len() events, no waiting.
        while unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_epoll_wait,
                self.0,
                evs.as_mut_ptr(),
                evs.len() as c_int,
                0,
            )
        } == evs.len() as i64
        {}
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        host::close(self.0);
    }
}

/// The mixed wait behind poll, select, ppoll and pselect: kernel entries
/// are confirmed against the kernel (zero timeout), host entries are
/// polled with a zero timeout, and only then does the host ppoll block, on
/// the host entries and this waiter's doorbell (made, and the check
/// repeated, before the first block), with `sigmask` in force for the
/// blocking step alone. A call that finds something ready at once costs
/// no doorbell.
fn wait(
    set: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> c_int {
    for p in set.iter() {
        if let Err(e) = fdtable::ensure_notifier(p.fd) {
            return fail(e);
        }
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut kset: Vec<libc::pollfd> = Vec::new();
    let mut hset: Vec<libc::pollfd> = Vec::with_capacity(set.len() + 1);
    let mut bell: Option<Doorbell> = None;
    loop {
        kset.clear();
        hset.clear();
        for p in set.iter() {
            match fdtable::kernel_fd(p.fd) {
                Some(k) => kset.push(libc::pollfd {
                    fd: k,
                    events: p.events,
                    revents: 0,
                }),
                None => hset.push(libc::pollfd {
                    fd: p.fd,
                    events: p.events,
                    revents: 0,
                }),
            }
        }
        let zero = abi::Timespec::default();
        if !kset.is_empty()
            && kcall(
                nr::PPOLL,
                [
                    arg!(kset.as_mut_ptr()),
                    kset.len() as i64,
                    arg!(&zero as *const abi::Timespec),
                    0,
                    SIGSET_SIZE,
                    0,
                ],
            ) < 0
        {
            return -1;
        }
        let host_zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if !hset.is_empty()
            // SAFETY: our pollfd array of hset.len() entries and a zero
            // timespec, no mask.
            && unsafe {
                crate::hijack::host::host_syscall!(
                    libc::SYS_ppoll,
                    hset.as_mut_ptr(),
                    hset.len(),
                    &host_zero as *const libc::timespec,
                    std::ptr::null::<c_void>(),
                    SIGSET_SIZE,
                )
            } < 0
        {
            return -1;
        }
        let (mut ki, mut hi, mut ready) = (0, 0, 0);
        for p in set.iter_mut() {
            if fdtable::kernel_fd(p.fd).is_some() {
                p.revents = kset[ki].revents;
                ki += 1;
            } else {
                p.revents = hset[hi].revents;
                hi += 1;
            }
            if p.revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 {
            return ready;
        }
        let ts = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return 0;
                }
                Some(libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
        };
        let ring = match &bell {
            Some(b) => b.0,
            None => match Doorbell::new(set) {
                Ok(b) => {
                    // A wake-up between the check above and the doorbell
                    // rang nothing: check again before blocking.
                    bell = Some(b);
                    continue;
                }
                Err(e) => return fail(e),
            },
        };
        // Block: host entries as asked, kernel entries through the doorbell.
        hset.clear();
        for p in set.iter() {
            if fdtable::kernel_fd(p.fd).is_none() {
                hset.push(libc::pollfd {
                    fd: p.fd,
                    events: p.events,
                    revents: 0,
                });
            }
        }
        hset.push(libc::pollfd {
            fd: ring,
            events: libc::POLLIN,
            revents: 0,
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: our pollfd array of hset.len() entries, our timespec or
        // null, the program's signal mask or null.
        if unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_ppoll,
                hset.as_mut_ptr(),
                hset.len(),
                tsp,
                sigmask,
                SIGSET_SIZE,
            )
        } < 0
        {
            return -1;
        }
        if let Some(b) = &bell {
            b.clear();
        }
    }
}

fn timeout_of(ts: *const libc::timespec) -> Result<Option<Duration>, i32> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: the program's timespec.
    let t = unsafe { ts.read() };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)))
}

/// glibc's ppoll and pselect hand the kernel a copy of the timeout (which
/// the kernel would write the time left into): so do we.
fn timeout_copy(ts: *const libc::timespec) -> Option<libc::timespec> {
    // SAFETY: the program's timespec, if any.
    (!ts.is_null()).then(|| unsafe { ts.read() })
}

/// The host's check on poll's `nfds` (more than RLIMIT_NOFILE: EINVAL),
/// made before anything reads the array.
fn too_many_fds(nfds: libc::nfds_t) -> bool {
    nfds > 256 && nfds > host_nofile()
}

/// The host's RLIMIT_NOFILE (soft).
fn host_nofile() -> libc::nfds_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return libc::nfds_t::MAX;
    }
    r.rlim_cur as libc::nfds_t
}

/// # Safety
/// libc's contract for `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    if too_many_fds(nfds) {
        return fail(libc::EINVAL);
    }
    let set = if fds.is_null() || nfds == 0 {
        &mut [][..]
    } else {
        // SAFETY: the program passes `nfds` pollfds at `fds`.
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    if !set.iter().any(|p| fdtable::kernel_fd(p.fd).is_some()) {
        let copy = timeout_copy(ts);
        let tsp = copy
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: the program's arguments to the same host call, with our
        // copy of its timeout.
        return unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_ppoll,
                fds,
                nfds,
                tsp,
                sigmask,
                SIGSET_SIZE
            )
        } as c_int;
    }
    match timeout_of(ts) {
        Ok(t) => wait(set, t, sigmask),
        Err(e) => fail(e),
    }
}

/// # Safety
/// glibc's contract for `__ppoll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: usize,
) -> c_int {
    fortify(
        (nfds as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()),
        fdslen,
    );
    // SAFETY: same contract once the length is checked.
    unsafe { ppoll(fds, nfds, ts, sigmask) }
}

/// # Safety
/// libc's contract for `pselect` (the timeout is not written back).
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    if nfds < 0 {
        return fail(libc::EINVAL);
    }
    let nfds = nfds.min(libc::FD_SETSIZE as c_int);
    if !any_kernel_fd(nfds, readfds, writefds, exceptfds) {
        let copy = timeout_copy(ts);
        let tsp = copy
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // The kernel's pselect6 takes {sigmask, size} by reference.
        let mask = [sigmask as usize, SIGSET_SIZE as usize];
        let maskp = if sigmask.is_null() {
            std::ptr::null()
        } else {
            mask.as_ptr()
        };
        // SAFETY: the program's sets, our copy of its timeout and our
        // {mask, size} pair (or null).
        return unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_pselect6,
                nfds,
                readfds,
                writefds,
                exceptfds,
                tsp,
                maskp,
            )
        } as c_int;
    }
    let t = match timeout_of(ts) {
        Ok(t) => t,
        Err(e) => {
            return fail(e);
        }
    };
    let mut list = fdsets_to_pollfds(nfds, readfds, writefds, exceptfds);
    if wait(&mut list, t, sigmask) < 0 {
        return -1;
    }
    pollfds_to_fdsets(&list, readfds, writefds, exceptfds)
}

/// Whether any descriptor below `nfds` in the program's sets is a kernel
/// one. Allocates nothing: select and pselect on host descriptors alone
/// go straight to the host (and may be called from a signal handler).
fn any_kernel_fd(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
) -> bool {
    (0..nfds).any(|fd| {
        fdtable::kernel_fd(fd).is_some()
            && [readfds, writefds, exceptfds]
                .into_iter()
                .any(|s| member(s, fd))
    })
}

/// True if `fd` is in the program's set `s` (a null set has nothing).
fn member(s: *mut libc::fd_set, fd: c_int) -> bool {
    // SAFETY: FD_ISSET on the program's set, for a number below nfds
    // (at most FD_SETSIZE, checked by the callers).
    !s.is_null() && unsafe { libc::FD_ISSET(fd, s) }
}

/// The pollfd list select and pselect wait on: one entry per descriptor
/// below `nfds` in any of the program's sets.
fn fdsets_to_pollfds(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
) -> Vec<libc::pollfd> {
    (0..nfds)
        .filter_map(|fd| {
            let mut events = 0;
            if member(readfds, fd) {
                events |= libc::POLLIN;
            }
            if member(writefds, fd) {
                events |= libc::POLLOUT;
            }
            if member(exceptfds, fd) {
                events |= libc::POLLPRI;
            }
            (events != 0).then_some(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        })
        .collect()
}

/// Writes a finished wait back into the program's sets as select does and
/// returns the number of bits set, or -1 (EBADF) for a closed descriptor.
fn pollfds_to_fdsets(
    list: &[libc::pollfd],
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
) -> c_int {
    if list.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return fail(libc::EBADF);
    }
    for s in [readfds, writefds, exceptfds] {
        if !s.is_null() {
            // SAFETY: clears the program's set.
            unsafe { libc::FD_ZERO(s) };
        }
    }
    let mut count = 0;
    for p in list {
        for (s, ready, asked) in [
            (
                readfds,
                libc::POLLIN | libc::POLLHUP | libc::POLLERR,
                libc::POLLIN,
            ),
            (writefds, libc::POLLOUT | libc::POLLERR, libc::POLLOUT),
            (exceptfds, libc::POLLPRI, libc::POLLPRI),
        ] {
            if !s.is_null() && p.events & asked != 0 && p.revents & ready != 0 {
                // SAFETY: sets a number below nfds in the program's set.
                unsafe { libc::FD_SET(p.fd, s) };
                count += 1;
            }
        }
    }
    count
}

//! Receive polling: the program thread about to sleep on a semaphore waits
//! on the network devices' descriptors instead, and does their receive
//! work itself when one becomes readable.
//!
//! Without it, a frame for a program blocked in `recv` crosses three host
//! threads: the peer's, the device worker's (woken by the tap), and the
//! program's (woken by the worker's interrupt through its task semaphore).
//! With it, the program's own thread is the one the tap wakes: it reads
//! the frame into the receive queue and raises the interrupt, which wakes
//! its own task, so the semaphore's count is already up when it looks
//! again and it returns without sleeping: one wake-up per frame, as over
//! veth.
//!
//! The pieces:
//! - a device registers an [`RxSource`] (its descriptor, and how to take
//!   over its readiness, serve it, and give it back);
//! - [`Semaphore::down`](super::Semaphore::down), on a program thread
//!   (never a thread the kernel created, see [`mark_kernel_thread`]) and
//!   for a semaphore that does not spin, calls [`wait`], which takes the
//!   one poller role (an atomic; other threads sleep on the futex as
//!   before), leases the sources, and `poll`s their descriptors and the
//!   kick eventfd;
//! - [`Semaphore::up`](super::Semaphore::up) writes the kick eventfd when
//!   the waiter announced that it polls (async-signal-safe: one `write`).
//!
//! The wait keeps the semaphore's protocol: announce (a bit in the waiter
//! word), recheck the count, sleep; `up` raises the count, then reads the
//! announcement. Either `up` sees the bit and kicks, or the waiter sees
//! the count and does not sleep.
//!
//! A source is leased while a poller uses it; [`Registration::close`]
//! (device reset or teardown) marks it closed, kicks the poller and waits
//! until it has let the source go, so no poller ever holds a device across
//! its stop.
//!
//! The device's worker keeps serving everything else, and the receive
//! side whenever no program thread waits: it polls the descriptor's
//! readability through a [`Gate`] that a poller switches off (and that
//! lingers off for a bounded time after the poller left, see there).
//! Only a thread blocked in a kernel call can poll: a program waiting in
//! the host's `poll`/`epoll` sleeps outside the kernel.
//!
//! `LKL_RX_POLL=0|1` (read once, at the first registration) switches it
//! off or on; see [`DEFAULT_ON`].

use std::cell::Cell;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::sem::{futex_wait, futex_wake};

/// Whether receive polling is on when `LKL_RX_POLL` is unset.
pub const DEFAULT_ON: bool = false;

/// Sources one poller waits on at most (devices beyond are left to their
/// workers).
const MAX_SOURCES: usize = 8;

/// A device's receive side, as a poller sees it.
pub trait RxSource: Send + Sync {
    /// The descriptor whose readability means work.
    fn fd(&self) -> RawFd;

    /// Takes the descriptor's readiness over from the device's own worker
    /// (which must then not wake for it). False if the device does not
    /// want to read now: the poller leaves it alone.
    fn begin(&self) -> bool;

    /// The descriptor is readable: deliver what it has, raising the
    /// interrupt as the worker would. `woken` says whether the poller's
    /// own semaphore went up meanwhile (work left may then be left to the
    /// worker after [`end`](Self::end)). Returns false if the device no
    /// longer wants to read (the poller then gives it back at once).
    fn service(&self, woken: &dyn Fn() -> bool) -> bool;

    /// Gives the readiness back to the worker, at once or after a
    /// bounded time ([`Gate`]); the worker then wakes if the descriptor is
    /// readable.
    fn end(&self);
}

const USING: u32 = 1;
const CLOSED: u32 = 2;

struct Slot {
    state: AtomicU32,
    source: Mutex<Option<Arc<dyn RxSource>>>,
}

/// Registered sources, and a count the semaphore checks first.
static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Bumped on every registration: a poller re-collects its sources.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// One thread at a time polls.
static POLLER: AtomicBool = AtomicBool::new(false);
/// The eventfd `up` writes to wake the poller (-1 until the first
/// registration creates it; never closed).
static KICK: AtomicI32 = AtomicI32::new(-1);

thread_local! {
    /// Set on threads the kernel created: they never poll.
    static KERNEL_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread is the poller.
    static IN_SESSION: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the kernel's own (its kernel
/// threads and idle): only program threads poll.
pub fn mark_kernel_thread() {
    KERNEL_THREAD.with(|k| k.set(true));
}

/// Whether receive polling is on (`LKL_RX_POLL`, read once).
pub fn enabled() -> bool {
    #[cfg(test)]
    if tests::FORCE_ON.load(Ordering::SeqCst) {
        return true;
    }
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| match std::env::var("LKL_RX_POLL").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => DEFAULT_ON,
    })
}

/// A registered source; [`close`](Self::close) (or dropping it) takes it
/// out of every poller's hands.
pub struct Registration {
    slot: Arc<Slot>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("state", &self.slot.state.load(Ordering::Relaxed))
            .finish()
    }
}

fn kick_fd() -> Option<RawFd> {
    let fd = KICK.load(Ordering::Acquire);
    if fd >= 0 {
        return Some(fd);
    }
    // SAFETY: eventfd has no memory arguments; the result is checked.
    let new = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if new < 0 {
        return None;
    }
    match KICK.compare_exchange(-1, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(new),
        Err(other) => {
            // SAFETY: `new` is ours and unused.
            unsafe { libc::close(new) };
            Some(other)
        }
    }
}

/// Registers `source` with the pollers, or returns `None` when receive
/// polling is off (or the kick eventfd cannot be made).
pub fn register(source: Arc<dyn RxSource>) -> Option<Registration> {
    if !enabled() {
        return None;
    }
    kick_fd()?;
    let slot = Arc::new(Slot {
        state: AtomicU32::new(0),
        source: Mutex::new(Some(source)),
    });
    lock(&SLOTS).push(slot.clone());
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst);
    kick();
    Some(Registration { slot })
}

impl Registration {
    /// Takes the source out: after this returns, no poller uses it and the
    /// registry holds no reference to it.
    pub fn close(&self) {
        let prev = self.slot.state.fetch_or(CLOSED, Ordering::SeqCst);
        if prev & CLOSED != 0 {
            return;
        }
        {
            let mut slots = lock(&SLOTS);
            slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
        }
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        // The poller (if it is this very thread, the session lets go of the
        // source when it ends; waiting here would never end).
        if !IN_SESSION.with(Cell::get) {
            loop {
                let s = self.slot.state.load(Ordering::SeqCst);
                if s & USING == 0 {
                    break;
                }
                kick();
                futex_wait(&self.slot.state, s);
            }
        }
        drop(lock(&self.slot.source).take());
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes the poller, whatever it waits for. Async-signal-safe.
pub(super) fn kick() {
    let fd = KICK.load(Ordering::Acquire);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to our eventfd; a full
        // counter (EAGAIN) already means a pending wake-up.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

fn drain_kick(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live local from our non-blocking eventfd.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// The bit in a semaphore's waiter word that says "the waiter polls".
pub(super) const POLL_BIT: u32 = 1 << 31;

/// Whether the calling thread may poll at all (cheap: checked on every
/// sleeping `down`).
#[inline]
pub(super) fn may_poll() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0 && !KERNEL_THREAD.with(Cell::get)
}

/// One leased source in a session.
struct Leased {
    slot: Arc<Slot>,
    source: Arc<dyn RxSource>,
}

/// Lets the role go on every way out of a session.
struct Role;

impl Drop for Role {
    fn drop(&mut self) {
        IN_SESSION.with(|s| s.set(false));
        POLLER.store(false, Ordering::Release);
    }
}

fn release(l: Leased) {
    l.source.end();
    drop(l.source);
    let prev = l.slot.state.fetch_and(!USING, Ordering::SeqCst);
    if prev & CLOSED != 0 {
        futex_wake(&l.slot.state, i32::MAX);
    }
}

/// Sleeps until `count` is non-zero (or a source needs a new session),
/// serving the sources' receive work meanwhile. `waiters` is the
/// semaphore's waiter word (announced in with [`POLL_BIT`]). Returns false
/// if this thread cannot be the poller now, or a source hung up: the
/// caller sleeps on the futex instead.
pub(super) fn wait(count: &AtomicU32, waiters: &AtomicU32) -> bool {
    let kick_fd = KICK.load(Ordering::Acquire);
    if kick_fd < 0 {
        return false;
    }
    if POLLER
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    IN_SESSION.with(|s| s.set(true));
    let _role = Role;
    let generation = GENERATION.load(Ordering::SeqCst);

    let mut leased: [Option<Leased>; MAX_SOURCES] = Default::default();
    let mut n = 0;
    {
        let slots = lock(&SLOTS);
        for slot in slots.iter() {
            if n == MAX_SOURCES {
                break;
            }
            if slot
                .state
                .compare_exchange(0, USING, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let source = lock(&slot.source).clone();
            let Some(source) = source.filter(|s| s.begin()) else {
                let prev = slot.state.fetch_and(!USING, Ordering::SeqCst);
                if prev & CLOSED != 0 {
                    futex_wake(&slot.state, i32::MAX);
                }
                continue;
            };
            leased[n] = Some(Leased {
                slot: slot.clone(),
                source,
            });
            n += 1;
        }
    }
    if n == 0 {
        return false;
    }

    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_SOURCES + 1];
    let mut hung_up = false;
    loop {
        if count.load(Ordering::SeqCst) != 0 {
            break;
        }
        let mut live = 0;
        for (i, l) in leased.iter().enumerate() {
            fds[i] = libc::pollfd {
                fd: l.as_ref().map_or(-1, |l| l.source.fd()),
                events: libc::POLLIN,
                revents: 0,
            };
            live += usize::from(l.is_some());
        }
        if live == 0 || GENERATION.load(Ordering::SeqCst) != generation {
            break;
        }
        fds[MAX_SOURCES] = libc::pollfd {
            fd: kick_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Announce, recheck, sleep: `up` raises the count first and then
        // looks for the bit.
        waiters.fetch_add(POLL_BIT, Ordering::SeqCst);
        if count.load(Ordering::SeqCst) == 0 {
            // SAFETY: `fds` is a live array of initialised pollfds (a
            // negative fd is skipped by poll); no timeout.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        }
        waiters.fetch_sub(POLL_BIT, Ordering::SeqCst);
        if fds[MAX_SOURCES].revents != 0 {
            drain_kick(kick_fd);
        }
        for (i, entry) in leased.iter_mut().enumerate() {
            let Some(l) = entry else { continue };
            let r = fds[i].revents;
            let keep = if l.slot.state.load(Ordering::SeqCst) & CLOSED != 0 {
                false
            } else if r & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // The worker sees (and handles) the hang-up; this wait goes
                // on on the futex, so as not to spin on it meanwhile.
                hung_up = true;
                false
            } else if r & libc::POLLIN != 0 {
                l.source.service(&|| count.load(Ordering::SeqCst) != 0)
            } else {
                true
            };
            if !keep {
                if let Some(l) = entry.take() {
                    release(l);
                }
            }
        }
    }
    for l in leased.iter_mut().filter_map(Option::take) {
        release(l);
    }
    !hung_up
}

/// Default time a gate stays off after its poller left ([`Gate::release`]).
const DEFAULT_LINGER_US: u64 = 1000;

/// How long a gate stays off once its poller left: `LKL_RX_POLL_LINGER_US`
/// overrides [`DEFAULT_LINGER_US`] (0: back on at once), for measurements.
fn linger_ns() -> u64 {
    static US: OnceLock<u64> = OnceLock::new();
    1000 * *US.get_or_init(|| {
        std::env::var("LKL_RX_POLL_LINGER_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_LINGER_US)
    })
}

fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills a live local (a vDSO call, no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64).wrapping_mul(1_000_000_000) + t.tv_nsec as u64
}

/// Gate states: on (the worker wakes for readability), held by a poller,
/// or lingering off after the poller left, until the timer fires.
const GATE_ON: u32 = 0;
const GATE_HELD: u32 = 1;
const GATE_LINGER: u32 = 2;

/// An epoll set holding one descriptor for reading: the device's worker
/// polls the set instead of the descriptor, and a poller switches the
/// entry off while it serves the descriptor itself. A change of the entry
/// never wakes whoever polls the set, except that switching it back on
/// does when the descriptor is readable then: the worker takes over what
/// the poller left.
///
/// **Lingering.** A poller that leaves does not switch the gate back on at
/// once: a program thread usually comes back to wait within microseconds
/// (its reply sent, the next request awaited), and a frame arriving in
/// between would wake the worker, the very thread switch the poller saves
/// (measured: that happened on ~45% of net-bench's round trips, and took
/// the whole gain). The gate lingers off for a bounded time
/// (`LKL_RX_POLL_LINGER_US`, [`DEFAULT_LINGER_US`]) on a timer the worker
/// waits on; the next poller takes it over as it is; when the timer fires
/// with nobody back, the worker switches the gate on. A frame arriving
/// while nobody waits is so delayed by at most that long, and only while
/// pollers keep coming back in time: once the timer finds the gate
/// lingering, the next leavers switch it on at once, until one comes back
/// within the time again.
///
/// The timer is armed at most once per lingering time and never disarmed
/// (it fires, finds the gate held, and is armed again by the next leaver):
/// on a VM, arming or disarming a timer that is due before the host's next
/// tick reprograms the emulated timer hardware, measured at 3.5-7 us a
/// call here, more than the thread switch saved.
#[derive(Debug)]
pub struct Gate {
    epoll: std::os::fd::OwnedFd,
    timer: std::os::fd::OwnedFd,
    fd: RawFd,
    state: AtomicU32,
    /// The timer is armed (or fired and not yet seen by the worker).
    armed: AtomicBool,
    /// Pollers came back within the lingering time lately.
    linger_ok: AtomicBool,
    /// When the last poller left (`now_ns`).
    left_at: AtomicU64,
    linger_ns: u64,
}

fn owned(fd: libc::c_int) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just made by the caller's syscall and is owned by
    // nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

impl Gate {
    /// A gate over `fd` (which must outlive it), switched on.
    pub fn new(fd: RawFd) -> std::io::Result<Gate> {
        // SAFETY: no memory arguments; the result is checked.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let timer = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        let gate = Gate {
            epoll,
            timer,
            fd,
            state: AtomicU32::new(GATE_ON),
            armed: AtomicBool::new(false),
            linger_ok: AtomicBool::new(true),
            left_at: AtomicU64::new(0),
            linger_ns: linger_ns(),
        };
        gate.ctl(libc::EPOLL_CTL_ADD, libc::EPOLLIN as u32)?;
        Ok(gate)
    }

    fn ctl(&self, op: libc::c_int, events: u32) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events, u64: 0 };
        // SAFETY: `ev` is a live local the call reads; both fds are live.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, self.fd, &mut ev) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Arms the timer `ns` from now unless it is armed already.
    fn arm(&self, ns: u64) {
        use std::os::fd::AsRawFd;
        if self.armed.swap(true, Ordering::SeqCst) {
            return;
        }
        let ns = ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a live local the call reads; no old value asked.
        unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, ptr::null_mut()) };
    }

    fn switch_on(&self) {
        // Cannot fail for a live epoll set and fd; if it did, the worker
        // would miss readability until it wakes for another cause.
        let _ = self.ctl(libc::EPOLL_CTL_MOD, libc::EPOLLIN as u32);
    }

    /// A poller takes the descriptor's readability over: the worker no
    /// longer wakes for it (hang-ups and errors still reach it).
    pub fn hold(&self) -> std::io::Result<()> {
        match self.state.swap(GATE_HELD, Ordering::SeqCst) {
            // Off already: back in time.
            GATE_LINGER | GATE_HELD => {
                self.linger_ok.store(true, Ordering::Relaxed);
                Ok(())
            }
            _ => {
                if self.linger_ns != 0
                    && now_ns().wrapping_sub(self.left_at.load(Ordering::Relaxed)) < self.linger_ns
                {
                    self.linger_ok.store(true, Ordering::Relaxed);
                }
                self.ctl(libc::EPOLL_CTL_MOD, 0).inspect_err(|_| {
                    self.state.store(GATE_ON, Ordering::SeqCst);
                })
            }
        }
    }

    /// The poller leaves: the gate lingers off (see the type's doc), or
    /// goes back on at once (always without `linger`).
    pub fn release(&self, linger: bool) {
        self.left_at.store(now_ns(), Ordering::SeqCst);
        if !linger || self.linger_ns == 0 || !self.linger_ok.load(Ordering::Relaxed) {
            self.state.store(GATE_ON, Ordering::SeqCst);
            self.switch_on();
            return;
        }
        self.state.store(GATE_LINGER, Ordering::SeqCst);
        // Lingering always has a timer to come: one armed, or one that fired
        // and whose `timer_fired` has not cleared `armed` yet (it looks at
        // the state after clearing it).
        self.arm(self.linger_ns);
    }

    /// The worker saw [`timer_fd`](Self::timer_fd) readable: switches the
    /// gate back on if it lingered long enough with nobody back.
    pub fn timer_fired(&self) {
        use std::os::fd::AsRawFd;
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live local from our non-blocking
        // timerfd.
        unsafe { libc::read(self.timer.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        self.armed.store(false, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) != GATE_LINGER {
            return;
        }
        // Armed by an earlier leaver: wait for the full time from the last.
        let since = now_ns().wrapping_sub(self.left_at.load(Ordering::SeqCst));
        if since < self.linger_ns {
            self.arm(self.linger_ns - since);
            return;
        }
        if self
            .state
            .compare_exchange(GATE_LINGER, GATE_ON, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.linger_ok.store(false, Ordering::Relaxed);
            self.switch_on();
        }
    }

    /// The descriptor to poll for readability in place of the gated one.
    pub fn as_raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.epoll.as_raw_fd()
    }

    /// The timer the worker polls (readable: call
    /// [`timer_fired`](Self::timer_fired)).
    pub fn timer_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.timer.as_raw_fd()
    }
}

/// Serializes tests that use the (per-process) registry, with polling
/// forced on.
#[cfg(test)]
pub(crate) fn test_serial() -> std::sync::MutexGuard<'static, ()> {
    let g = tests::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tests::FORCE_ON.store(true, Ordering::SeqCst);
    g
}

/// Whether a thread waiting on `sem` polls (for tests).
#[cfg(test)]
pub(crate) fn polls_on(sem: &super::Semaphore) -> bool {
    sem.waiters_word() & POLL_BIT != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Semaphore;
    use std::sync::atomic::AtomicBool;
    use std::thread;
    use std::time::{Duration, Instant};

    pub(super) static FORCE_ON: AtomicBool = AtomicBool::new(false);
    /// The registry and the poller role are per process: one test at a time.
    pub(super) static SERIAL: Mutex<()> = Mutex::new(());

    /// A device stand-in: its "descriptor" is an eventfd; serving it drains
    /// the eventfd and raises `sem`, as a frame's interrupt wakes the
    /// waiting task.
    struct Fake {
        fd: std::os::fd::OwnedFd,
        sem: Arc<Semaphore>,
        served_on: Mutex<Vec<thread::ThreadId>>,
        begins: AtomicUsize,
        ends: AtomicUsize,
        want: AtomicBool,
    }

    impl Fake {
        fn new(sem: Arc<Semaphore>) -> Arc<Fake> {
            // SAFETY: no memory arguments; checked below.
            let fd =
                owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).unwrap();
            Arc::new(Fake {
                fd,
                sem,
                served_on: Mutex::new(Vec::new()),
                begins: AtomicUsize::new(0),
                ends: AtomicUsize::new(0),
                want: AtomicBool::new(true),
            })
        }

        fn frame(&self) {
            let one: u64 = 1;
            // SAFETY: 8 bytes from a live local to our eventfd.
            let r = unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
            assert_eq!(r, 8);
        }

        fn served(&self) -> Vec<thread::ThreadId> {
            self.served_on.lock().unwrap().clone()
        }
    }

    impl RxSource for Fake {
        fn fd(&self) -> RawFd {
            use std::os::fd::AsRawFd;
            self.fd.as_raw_fd()
        }
        fn begin(&self) -> bool {
            if !self.want.load(Ordering::SeqCst) {
                return false;
            }
            self.begins.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn service(&self, _woken: &dyn Fn() -> bool) -> bool {
            let mut v: u64 = 0;
            // SAFETY: 8 bytes into a live local from our eventfd.
            unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
            self.served_on.lock().unwrap().push(thread::current().id());
            // One unit per frame (the eventfd adds up frames not yet read).
            for _ in 0..v {
                self.sem.up();
            }
            true
        }
        fn end(&self) {
            self.ends.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn setup() -> std::sync::MutexGuard<'static, ()> {
        test_serial()
    }

    /// Waits (bounded) until `f` holds.
    fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn polling(sem: &Semaphore) -> bool {
        polls_on(sem)
    }

    #[test]
    fn readiness_is_served_on_the_waiting_thread() {
        let _g = setup();
        let sem = Arc::new(Semaphore::new(0));
        let fake = Fake::new(sem.clone());
        let reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            s2.down();
            thread::current().id()
        });
        until("the waiter to poll", || polling(&sem));
        fake.frame();
        let waiter = t.join().unwrap();
        assert_eq!(fake.served(), vec![waiter]);
        assert_eq!(fake.begins.load(Ordering::SeqCst), 1);
        assert_eq!(fake.ends.load(Ordering::SeqCst), 1);
        assert!(!POLLER.load(Ordering::SeqCst));
        reg.close();
        assert_eq!(Arc::strong_count(&fake), 1);
    }

    #[test]
    fn up_wakes_a_polling_waiter() {
        let _g = setup();
        let sem = Arc::new(Semaphore::new(0));
        let fake = Fake::new(Arc::new(Semaphore::new(0)));
        let _reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.down());
        until("the waiter to poll", || polling(&sem));
        sem.up();
        t.join().unwrap();
        assert!(fake.served().is_empty());
        assert_eq!(fake.ends.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_lost_wake_up() {
        let _g = setup();
        const N: usize = 20_000;
        let sem = Arc::new(Semaphore::new(0));
        let fake = Fake::new(sem.clone());
        let _reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let t = thread::spawn(move || {
            for _ in 0..N {
                s2.down();
            }
            d2.store(true, Ordering::SeqCst);
        });
        // Units from both sides, racing the waiter's announce and recheck:
        // plain `up`s and "frames" whose service raises the semaphore.
        let f2 = fake.clone();
        let frames = thread::spawn(move || {
            for i in 0..N / 2 {
                f2.frame();
                if i % 64 == 0 {
                    thread::yield_now();
                }
            }
        });
        for i in 0..N / 2 {
            sem.up();
            if i % 64 == 0 {
                thread::yield_now();
            }
        }
        frames.join().unwrap();
        // N units in all, half of them served by whichever thread polls
        // (the waiter, while it waits): the waiter takes all N.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "a wake-up was lost");
            thread::sleep(Duration::from_millis(5));
        }
        t.join().unwrap();
        assert!(!fake.served().is_empty());
        assert_eq!(sem.waiters_word(), 0);
        assert!(!sem.try_down());
    }

    #[test]
    fn close_takes_the_source_from_a_polling_thread() {
        let _g = setup();
        let sem = Arc::new(Semaphore::new(0));
        let fake = Fake::new(Arc::new(Semaphore::new(0)));
        let reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.down());
        until("the waiter to poll", || polling(&sem));
        reg.close();
        // The poller let go, the registry holds nothing: only our reference.
        assert_eq!(Arc::strong_count(&fake), 1);
        assert_eq!(fake.ends.load(Ordering::SeqCst), 1);
        // The waiter sleeps on as before (on the futex now) and still wakes.
        until("the waiter to sleep on the futex", || {
            let w = sem.waiters_word();
            w != 0 && w & POLL_BIT == 0
        });
        fake.frame();
        sem.up();
        t.join().unwrap();
        assert!(fake.served().is_empty());
    }

    #[test]
    fn kernel_threads_and_unwanted_sources_do_not_poll() {
        let _g = setup();
        let sem = Arc::new(Semaphore::new(0));
        let fake = Fake::new(sem.clone());
        let _reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || {
            mark_kernel_thread();
            s2.down();
        });
        until("the kernel thread to sleep", || sem.waiters_word() == 1);
        sem.up();
        t.join().unwrap();
        fake.want.store(false, Ordering::SeqCst);
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.down());
        until("the waiter to sleep", || sem.waiters_word() == 1);
        sem.up();
        t.join().unwrap();
        assert_eq!(fake.begins.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_hung_up_source_sends_the_waiter_to_the_futex() {
        let _g = setup();
        let sem = Arc::new(Semaphore::new(0));
        let mut fake = Fake::new(Arc::new(Semaphore::new(0)));
        // A pipe whose writer is gone: POLLHUP for good.
        let mut p = [0; 2];
        // SAFETY: `p` is a live array of two ints for pipe2 to fill.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        drop(owned(p[1]).unwrap());
        Arc::get_mut(&mut fake).unwrap().fd = owned(p[0]).unwrap();
        let _reg = register(fake.clone()).unwrap();
        let s2 = sem.clone();
        let t = thread::spawn(move || s2.down());
        until("the waiter to sleep on the futex", || {
            sem.waiters_word() == 1
        });
        sem.up();
        t.join().unwrap();
        assert!(fake.served().is_empty());
        assert_eq!(
            fake.begins.load(Ordering::SeqCst),
            fake.ends.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn gate_switches_readability_without_waking() {
        let _g = setup();
        let fake = Fake::new(Arc::new(Semaphore::new(0)));
        let gate = Gate::new(fake.fd()).unwrap();
        let readable = |fd: RawFd| {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, no wait.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        fake.frame();
        assert!(readable(gate.as_raw_fd()));
        gate.hold().unwrap();
        assert!(!readable(gate.as_raw_fd()));
        // Released, it lingers off until the timer fires and the worker
        // says so.
        gate.release(true);
        assert!(!readable(gate.as_raw_fd()));
        until("the linger timer", || readable(gate.timer_fd()));
        gate.timer_fired();
        assert!(readable(gate.as_raw_fd()));
        // Nobody came back in time: the next leaver switches it on at once.
        gate.hold().unwrap();
        assert!(!readable(gate.as_raw_fd()));
        gate.release(true);
        assert!(readable(gate.as_raw_fd()));
        // A poller back in time makes it linger again; held again before
        // the timer fires, it stays off.
        gate.hold().unwrap();
        gate.release(true);
        assert!(!readable(gate.as_raw_fd()));
        gate.hold().unwrap();
        until("the linger timer", || readable(gate.timer_fd()));
        gate.timer_fired();
        assert!(!readable(gate.as_raw_fd()));
        gate.release(true);
        until("the linger timer", || readable(gate.timer_fd()));
        gate.timer_fired();
        assert!(readable(gate.as_raw_fd()));
    }
}

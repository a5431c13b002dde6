//! A counting semaphore on a futex: the kernel's scheduling primitive (the
//! CPU lock, each task's wait point, idle). `down` never returns early.
//!
//! A semaphore made for a contended lock (the CPU lock) spins for a bounded
//! time before it sleeps: its holder usually releases it within a few
//! microseconds, and a futex sleep plus wake-up costs more than that. The
//! others sleep at once, since spinning there takes a core from the thread
//! that holds the CPU (measured: it cuts TCP throughput several times).

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::rxpoll;
use crate::sys::{Sem, LKL_SEM_SPIN};

/// Default spin budget of a contended lock, in nanoseconds.
const DEFAULT_SPIN_NS: u32 = 10_000;

/// Counting semaphore. `up` wakes one waiter; `down` blocks while the count
/// is zero. `waiters` counts the futex sleepers, plus `rxpoll::POLL_BIT`
/// while a waiter polls instead.
#[derive(Debug)]
pub struct Semaphore {
    count: AtomicU32,
    waiters: AtomicU32,
    spin_ns: u32,
}

impl Semaphore {
    /// A semaphore whose waiters sleep at once.
    pub const fn new(count: u32) -> Self {
        Semaphore {
            count: AtomicU32::new(count),
            waiters: AtomicU32::new(0),
            spin_ns: 0,
        }
    }

    /// A semaphore used as a contended lock: waiters spin up to `spin_ns`
    /// before sleeping.
    pub const fn with_spin(count: u32, spin_ns: u32) -> Self {
        Semaphore {
            count: AtomicU32::new(count),
            waiters: AtomicU32::new(0),
            spin_ns,
        }
    }

    /// Takes one unit if there is one, without blocking.
    pub fn try_down(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        while c > 0 {
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    fn spin(&self) -> bool {
        if self.spin_ns == 0 {
            return false;
        }
        let start = Instant::now();
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if self.count.load(Ordering::Relaxed) > 0 && self.try_down() {
                    return true;
                }
            }
            if start.elapsed().as_nanos() > u128::from(self.spin_ns) {
                return false;
            }
        }
    }

    /// Takes one unit, waiting for it as long as it takes.
    pub fn down(&self) {
        if self.try_down() || self.spin() {
            return;
        }
        loop {
            if self.try_down() {
                return;
            }
            // A program thread may wait on the network devices instead
            // (rxpoll.rs); the CPU lock's waiters never do.
            if self.spin_ns == 0 && rxpoll::may_poll() && rxpoll::wait(&self.count, &self.waiters) {
                continue;
            }
            // Announce the wait before sleeping: `up` reads `waiters` after
            // raising the count, and FUTEX_WAIT rechecks the count, so a
            // wake-up cannot fall between the check and the sleep.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if self.count.load(Ordering::SeqCst) == 0 {
                futex_wait(&self.count, 0);
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The waiter word (futex sleepers, and the polling bit), for tests.
    #[cfg(test)]
    pub(super) fn waiters_word(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
    }

    /// Adds one unit and wakes a waiter if there is one: a thread asleep
    /// on the futex, or one polling (rxpoll.rs). Async-signal-safe.
    pub fn up(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let w = self.waiters.load(Ordering::SeqCst);
        if w & rxpoll::POLL_BIT != 0 {
            rxpoll::kick();
        }
        if w & !rxpoll::POLL_BIT != 0 {
            futex_wake(&self.count, 1);
        }
    }
}

/// The spin budget of contended locks: `LKL_SPIN_NS` overrides the default
/// (0 turns spinning off), for measurements.
fn lock_spin_ns() -> u32 {
    static NS: OnceLock<u32> = OnceLock::new();
    *NS.get_or_init(|| {
        std::env::var("LKL_SPIN_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_SPIN_NS)
    })
}

pub(super) fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT_PRIVATE reads the u32 behind a valid reference and
    // sleeps only while it still equals `expected`; no timeout pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        );
    }
}

pub(super) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE_PRIVATE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

pub(super) unsafe extern "C" fn sem_alloc(count: c_int, flags: c_int) -> *mut Sem {
    let count = count.max(0) as u32;
    let sem = if flags & LKL_SEM_SPIN != 0 {
        Semaphore::with_spin(count, lock_spin_ns())
    } else {
        Semaphore::new(count)
    };
    Box::into_raw(Box::new(sem)).cast()
}

/// # Safety
/// `sem` comes from `sem_alloc` and is not used again.
pub(super) unsafe extern "C" fn sem_free(sem: *mut Sem) {
    if !sem.is_null() {
        // SAFETY: the kernel frees each semaphore once, after its last use.
        drop(unsafe { Box::from_raw(sem.cast::<Semaphore>()) });
    }
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_up(sem: *mut Sem) {
    // SAFETY: see the function's contract.
    unsafe { &*sem.cast::<Semaphore>() }.up();
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_down(sem: *mut Sem) {
    // SAFETY: see the function's contract.
    unsafe { &*sem.cast::<Semaphore>() }.down();
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_trydown(sem: *mut Sem) -> c_int {
    // SAFETY: see the function's contract.
    c_int::from(unsafe { &*sem.cast::<Semaphore>() }.try_down())
}

//! Bounded spinning on the channel: a round trip to the kernel server is
//! two wake-ups of sleeping threads (8–15 µs on a small VM); a thread that
//! polls for the answer for a short while instead catches one that comes
//! quickly without sleeping. Both ends spin at most [`BUDGET_NS`] before
//! they sleep, and only where a second CPU can run the other end
//! meanwhile: on a machine (or an affinity mask) of one CPU spinning would
//! only delay the answer, so nobody spins. The server lets one thread
//! spin at a time (serve/conn.rs).
//!
//! What is polled is the channel's shared page (wire.rs: a load, no
//! system call), and every microsecond the spinning thread yields its CPU
//! (`sched_yield`): on a busy machine the thread it waits for may be the
//! one queued behind it.
//!
//! Spinning adapts ([`Adapt`]): a spin that ended without the answer (a
//! `recv` waiting for data, a bulk transfer's long calls, a machine too
//! busy to run the other end) makes the next waits of that kind sleep at
//! once, 1, 2, 4 … up to 64 of them, before one tries again; a spin that
//! caught its answer clears that. So a client spinning during long kernel
//! calls does not take the CPU the server and the device threads need.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

/// How long a thread polls before it sleeps, in nanoseconds.
pub const BUDGET_NS: u64 = 20_000;

/// How long a spinning thread polls between two yields of its CPU.
const YIELD_NS: u64 = 1_000;

/// The longest run of waits that sleep at once after failed spins (as a
/// power of two).
const MAX_BACKOFF: u32 = 6;

/// 0: not known yet, 1: spin, 2: never spin.
static ALLOWED: AtomicU8 = AtomicU8::new(0);

/// Whether this process may spin (more than one CPU to run on).
pub fn allowed() -> bool {
    match ALLOWED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // SAFETY: a zeroed cpu_set_t is valid; the host fills it.
            let cpus = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0
                {
                    libc::CPU_COUNT(&set)
                } else {
                    1
                }
            };
            let ok = cpus > 1;
            ALLOWED.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the vDSO's: no system call).
pub fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the vDSO's clock_gettime into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Whether waits of one kind spin: after a failed spin the next 2^k - 1
/// waits sleep at once (k counts the failures in a row, at most
/// [`MAX_BACKOFF`]).
pub struct Adapt {
    /// Failures in a row (high byte) and waits left to sleep at once.
    state: Cell<u32>,
}

impl Adapt {
    pub const fn new() -> Adapt {
        Adapt {
            state: Cell::new(0),
        }
    }

    /// Whether this wait should spin (counts a wait that should not).
    pub fn try_spin(&self) -> bool {
        if !allowed() {
            return false;
        }
        let s = self.state.get();
        if s & 0xff_ffff == 0 {
            return true;
        }
        self.state.set(s - 1);
        false
    }

    /// Records how a spin ended.
    pub fn spun(&self, caught: bool) {
        if caught {
            self.state.set(0);
            return;
        }
        let fails = ((self.state.get() >> 24) + 1).min(MAX_BACKOFF);
        self.state.set(fails << 24 | ((1 << fails) - 1));
    }
}

impl Default for Adapt {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls `poll` until it returns Some or the budget is spent, yielding
/// the CPU every [`YIELD_NS`]. `poll` must be cheap (a load).
pub fn until<R>(mut poll: impl FnMut() -> Option<R>) -> Option<R> {
    let start = now_ns();
    let deadline = start + BUDGET_NS;
    let mut next_yield = start + YIELD_NS;
    loop {
        for _ in 0..64 {
            if let Some(r) = poll() {
                return Some(r);
            }
            std::hint::spin_loop();
        }
        let now = now_ns();
        if now >= deadline {
            return poll();
        }
        if now >= next_yield {
            // SAFETY: no arguments.
            unsafe { crate::hijack::host::host_syscall!(libc::SYS_sched_yield, 0) };
            next_yield = now_ns() + YIELD_NS;
        }
    }
}

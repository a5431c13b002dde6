//! Bounded spinning on the channel: a round trip to the kernel server is
//! two wake-ups of sleeping threads (8–15 µs on a small VM); a thread that
//! polls its socket for a short while instead catches an answer that comes
//! quickly without sleeping. Both ends spin at most [`BUDGET_NS`] before
//! they sleep, and only where a second CPU can run the other end
//! meanwhile: on a machine (or an affinity mask) of one CPU spinning would
//! only delay the answer, so nobody spins. The server lets one thread
//! spin at a time (serve/conn.rs).
//!
//! A wait that outlasted the budget (a `recv` waiting for data, a bulk
//! transfer's calls) makes the next wait on that channel sleep at once: a
//! spinning thread would take the CPU the kernel's device threads need. A
//! sleep shorter than [`SHORT_NS`] makes the next wait spin again.

use std::sync::atomic::{AtomicU8, Ordering};

/// How long a thread polls before it sleeps, in nanoseconds.
pub const BUDGET_NS: u64 = 20_000;

/// A sleeping wait shorter than this makes the next one spin again (a
/// round trip through two sleeping threads takes 10–40 µs here, so a
/// bound of the budget alone would never be met).
pub const SHORT_NS: u64 = 4 * BUDGET_NS;

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

/// Waits with `poll` (non-blocking) and `block`: spins first if the waits
/// on this channel have been short (`short`, updated here).
pub fn wait<R>(
    short: &std::cell::Cell<bool>,
    poll: impl FnMut() -> Option<R>,
    block: impl FnOnce() -> R,
) -> R {
    if short.get() {
        if let Some(r) = until(poll) {
            return r;
        }
        short.set(false);
        return block();
    }
    if !allowed() {
        return block();
    }
    let t0 = now_ns();
    let r = block();
    short.set(now_ns() - t0 < SHORT_NS);
    r
}

/// Calls `poll` until it returns Some or the budget is spent.
pub fn until<R>(mut poll: impl FnMut() -> Option<R>) -> Option<R> {
    if !allowed() {
        return None;
    }
    let deadline = now_ns() + BUDGET_NS;
    loop {
        if let Some(r) = poll() {
            return Some(r);
        }
        if now_ns() >= deadline {
            return None;
        }
        std::hint::spin_loop();
    }
}

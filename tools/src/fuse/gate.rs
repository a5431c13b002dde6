//! The gate that keeps requests on one host thread while they do not
//! block (see [`Gate`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::{lock, KernelFs};

/// Keeps requests on one host thread while they do not block.
///
/// The host's FUSE layer hands each request to the thread that has waited
/// longest, so with several request threads consecutive requests land on
/// different threads; in our one-CPU kernel every such change is a task
/// switch (scheduler, idle exit, timer reprogramming, host wake-ups). So
/// only one thread, the one holding the gate, goes back to reading
/// requests after serving one; the others wait here. A request that may
/// block for long (data I/O, fsync, directory reads, truncation) steps
/// aside first, letting another thread read meanwhile: that is where
/// several threads serve requests at once.
///
/// Waiting threads give up after a quiet spell with no requests served
/// (the session may be ending: the holder's read fails and it leaves
/// without passing the gate on), and go back to reading.
pub(super) struct Gate {
    held: Mutex<bool>,
    freed: Condvar,
    served: AtomicU64,
    /// How long a waiting thread stays parked with no request served.
    quiet: Duration,
}

thread_local! {
    /// This thread holds the gate.
    static HOLDS_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Gate {
    pub(super) fn new(quiet: Duration) -> Self {
        Gate {
            held: Mutex::new(false),
            freed: Condvar::new(),
            served: AtomicU64::new(0),
            quiet,
        }
    }

    /// At the start of a request that may block: let another thread read.
    fn step_aside(&self) {
        if HOLDS_GATE.get() {
            HOLDS_GATE.set(false);
            *lock(&self.held) = false;
            self.freed.notify_one();
        }
    }

    /// At the end of every request, before the thread reads the next one.
    fn rejoin(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        if HOLDS_GATE.get() {
            return;
        }
        let mut held = lock(&self.held);
        loop {
            if !*held {
                *held = true;
                HOLDS_GATE.set(true);
                return;
            }
            let seen = self.served.load(Ordering::Relaxed);
            let (g, t) = self
                .freed
                .wait_timeout(held, self.quiet)
                .unwrap_or_else(|e| e.into_inner());
            held = g;
            if t.timed_out() && self.served.load(Ordering::Relaxed) == seen {
                return; // quiet: read anyway
            }
        }
    }
}

/// Passes through the gate for one request: [`Gate::rejoin`] on drop.
pub(super) struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.0.rejoin();
    }
}

impl KernelFs {
    /// The gate pass of a request that does not block for long.
    pub(super) fn pass(&self) -> GatePass<'_> {
        GatePass(&self.gate)
    }

    /// The gate pass of a request that may block: steps aside first.
    pub(super) fn pass_aside(&self) -> GatePass<'_> {
        self.gate.step_aside();
        GatePass(&self.gate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};
    use std::time::Instant;

    #[test]
    fn gate_keeps_one_reader_and_lets_blocking_requests_step_aside() {
        // Waiters never give up here: the test does not depend on timing.
        let gate = Arc::new(Gate::new(Duration::from_secs(3600)));
        // This thread serves a request and takes the gate.
        gate.rejoin();
        assert!(HOLDS_GATE.get());
        // Another thread finishing a request waits while we hold it and
        // requests keep being served...
        let (tx, rx) = mpsc::channel();
        let g = gate.clone();
        let other = std::thread::spawn(move || {
            g.rejoin();
            tx.send(HOLDS_GATE.get()).unwrap();
        });
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            gate.rejoin(); // we serve requests meanwhile: it keeps waiting
        }
        assert!(rx.try_recv().is_err(), "a second reader got through");
        // ...until a request of ours may block: then it takes over.
        gate.step_aside();
        assert!(!HOLDS_GATE.get());
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        other.join().unwrap();
    }

    #[test]
    fn gate_waiters_leave_when_nothing_is_served() {
        let quiet = Duration::from_millis(50);
        let gate = Arc::new(Gate::new(quiet));
        gate.rejoin();
        // The holder leaves without passing the gate on (the session
        // ended): a waiter goes back to reading after a quiet spell.
        let g = gate.clone();
        let t = Instant::now();
        let held = std::thread::spawn(move || {
            g.rejoin();
            HOLDS_GATE.get()
        })
        .join()
        .unwrap();
        assert!(!held);
        assert!(t.elapsed() >= quiet);
    }
}

//! Lock-free event counters for the virtio layer.
//!
//! Every place where the kernel (or a backend) did something wrong, and we
//! coped instead of panicking, bumps a counter here. Counters are plain
//! relaxed atomics: they are statistics, never used to synchronise anything,
//! so they can be read from any thread (a metrics dump, a test) while the
//! device runs.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Serialize, Serializer};

/// A monotonically increasing event counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        // Relaxed: a statistic, ordered with nothing else.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_serialises() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        assert_eq!(serde_json::to_string(&c).unwrap(), "42");
        assert_eq!(format!("{c:?}"), "42");
    }
}

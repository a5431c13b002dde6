//! One host thread per active device, off the kernel's CPU.
//!
//! A [`Worker`] runs an [`EventHandler`] on its own thread: before each wait
//! the handler says which fds it cares about (queue-notification eventfds,
//! its backend), the thread sleeps in `poll(2)`, and the handler is called
//! for each ready fd. A stop eventfd is always in the set, so
//! [`Worker::stop`] (or dropping the worker) wakes the thread, which returns
//! the handler; the caller joins it and gets the handler back (with its
//! backend, ready for the next activation).
//!
//! What this layer guarantees: the thread sleeps only in `poll`, and stop
//! is always in the set, so a stop takes as long as the handler's current
//! (non-blocking) call; after `stop` returns, the handler's code no longer
//! runs. A handler panic is caught by the join and reported as
//! [`WorkerError::Panicked`], never propagated into the caller (which may be
//! the kernel's CPU thread).

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::hostio::{EventFd, Interest, PollSet, Readiness};

/// Token reserved for the stop eventfd.
const STOP_TOKEN: u32 = u32::MAX;

/// The device logic a [`Worker`] runs.
pub trait EventHandler: Send + 'static {
    /// Called once on the worker thread before the first wait (e.g. to
    /// process buffers the driver queued before it could notify).
    fn start(&mut self) {}

    /// Adds the fds to wait on to `set`, with tokens of the handler's
    /// choosing (not `u32::MAX`). Called before every wait.
    fn interest(&mut self, set: &mut PollSet);

    /// Called for each fd that was ready, with its token. Must not block.
    fn ready(&mut self, token: u32, readiness: Readiness);
}

/// Errors of stopping a worker.
#[derive(Debug)]
pub enum WorkerError {
    /// The handler panicked; its state (and backend) is lost.
    Panicked,
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Panicked => write!(f, "device worker thread panicked"),
        }
    }
}

impl std::error::Error for WorkerError {}

/// A worker that could not be started; the handler comes back unharmed
/// (with its backend), so the device can try again later.
pub struct SpawnError<H> {
    /// Why the host refused.
    pub error: io::Error,
    /// The handler, never run.
    pub handler: H,
}

impl<H> fmt::Debug for SpawnError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError")
            .field("error", &self.error)
            .finish()
    }
}

/// A running handler on its own thread; stopped and joined on drop.
pub struct Worker<H: EventHandler> {
    stop: Arc<EventFd>,
    handle: Option<JoinHandle<Option<H>>>,
}

impl<H: EventHandler> fmt::Debug for Worker<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("running", &self.handle.is_some())
            .finish()
    }
}

impl<H: EventHandler> Worker<H> {
    /// Starts `handler` on a new thread called `name`.
    pub fn spawn(name: &str, handler: H) -> Result<Self, SpawnError<H>> {
        let stop = match EventFd::new() {
            Ok(e) => Arc::new(e),
            Err(error) => return Err(SpawnError { error, handler }),
        };
        let stop2 = stop.clone();
        // The handler is sent once the thread exists, so that a refused
        // spawn does not destroy it.
        let (tx, rx) = mpsc::sync_channel::<H>(1);
        let spawned = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || rx.recv().ok().map(|h| run(h, &stop2)));
        let handle = match spawned {
            Ok(h) => h,
            Err(error) => return Err(SpawnError { error, handler }),
        };
        // Cannot fail: the new thread holds the receiver until it gets this
        // one message, and the buffer has room for it.
        if let Err(mpsc::SendError(handler)) = tx.send(handler) {
            return Err(SpawnError {
                error: io::Error::other("worker thread exited at start"),
                handler,
            });
        }
        Ok(Worker {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread, waits for it, and returns the handler.
    pub fn stop(mut self) -> Result<H, WorkerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<H, WorkerError> {
        let Some(handle) = self.handle.take() else {
            return Err(WorkerError::Panicked);
        };
        // If the eventfd write failed the thread could sleep forever; it
        // cannot fail for a live eventfd (saturation is reported as Ok).
        let _ = self.stop.notify();
        match handle.join() {
            Ok(Some(h)) => Ok(h),
            _ => Err(WorkerError::Panicked),
        }
    }
}

impl<H: EventHandler> Drop for Worker<H> {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.stop_and_join();
        }
    }
}

fn run<H: EventHandler>(mut handler: H, stop: &EventFd) -> H {
    handler.start();
    let mut set = PollSet::new();
    // Reused: no allocation per wake-up.
    let mut ready: Vec<(u32, Readiness)> = Vec::new();
    loop {
        set.clear();
        set.add(stop.as_raw_fd(), STOP_TOKEN, Interest::READ);
        handler.interest(&mut set);
        if set.wait(None).is_err() {
            // ENOMEM (EINVAL cannot happen with our set sizes): nothing
            // better to do than retry shortly; a stop request still gets
            // through on the next round.
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        ready.clear();
        ready.extend(set.ready());
        if ready.iter().any(|(t, _)| *t == STOP_TOKEN) {
            return handler;
        }
        for &(token, r) in &ready {
            handler.ready(token, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter {
        ev: Arc<EventFd>,
        seen: Arc<AtomicUsize>,
        started: bool,
    }

    impl EventHandler for Counter {
        fn start(&mut self) {
            self.started = true;
        }
        fn interest(&mut self, set: &mut PollSet) {
            set.add(self.ev.as_raw_fd(), 0, Interest::READ);
        }
        fn ready(&mut self, token: u32, r: Readiness) {
            assert_eq!(token, 0);
            assert!(r.readable);
            self.seen
                .fetch_add(self.ev.drain().unwrap() as usize, Ordering::SeqCst);
        }
    }

    /// A worker counting the wake-ups of an eventfd: the eventfd, the
    /// count, the worker.
    fn spawn_counter() -> (Arc<EventFd>, Arc<AtomicUsize>, Worker<Counter>) {
        let ev = Arc::new(EventFd::new().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let w = Worker::spawn(
            "test-worker",
            Counter {
                ev: ev.clone(),
                seen: seen.clone(),
                started: false,
            },
        )
        .unwrap();
        (ev, seen, w)
    }

    #[test]
    fn runs_and_stops_with_join() {
        let (ev, seen, w) = spawn_counter();
        ev.notify().unwrap();
        ev.notify().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.load(Ordering::SeqCst) < 2 {
            assert!(std::time::Instant::now() < deadline);
            thread::sleep(Duration::from_millis(1));
        }
        let h = w.stop().unwrap();
        assert!(h.started);
        // After stop returned, the handler is ours again: no more events.
        ev.notify().unwrap();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn drop_joins() {
        let (ev, seen, w) = spawn_counter();
        drop(w);
        // The thread held a clone of `seen`; after the join only ours is
        // left (the handler was dropped with the thread's result).
        assert_eq!(Arc::strong_count(&seen), 1);
        assert_eq!(Arc::strong_count(&ev), 1);
    }

    struct Panicky;

    impl EventHandler for Panicky {
        fn start(&mut self) {
            panic!("handler bug (expected in this test)");
        }
        fn interest(&mut self, _set: &mut PollSet) {}
        fn ready(&mut self, _token: u32, _r: Readiness) {}
    }

    #[test]
    fn panic_is_reported_not_propagated() {
        let w = Worker::spawn("test-panicky", Panicky).unwrap();
        assert!(matches!(w.stop(), Err(WorkerError::Panicked)));
    }
}

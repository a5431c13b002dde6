//! Receive served by a program thread about to sleep (`host::rxpoll`):
//! the device's side of it.
//!
//! While a poller holds the device, the backend's readability is switched
//! off in the receive gate, which the worker polls in place of the backend
//! for reading, so the frame wakes the poller alone. The poller then does
//! what the worker does on a readable backend, under the same lock:
//! reads frames into the receive queue and raises the interrupt after
//! letting the lock go (raising it runs the kernel on the poller's thread,
//! which is what wakes its own task without a thread switch). When the
//! poller leaves, the gate lingers off for a bounded time, then the
//! worker switches it back on, and wakes then if frames came in meanwhile
//! (`Gate`).

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use super::worker::{raise, NetWorker};
use crate::host::rxpoll::{Gate, RxSource};
use crate::virtio::device::Interrupt;

/// A net device's receive side, served by pollers.
pub(super) struct NetRxSource {
    pub(super) core: Arc<Mutex<NetWorker>>,
    pub(super) interrupt: Arc<Interrupt>,
    pub(super) gate: Arc<Gate>,
    pub(super) fd: RawFd,
}

impl NetRxSource {
    fn lock(&self) -> std::sync::MutexGuard<'_, NetWorker> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RxSource for NetRxSource {
    fn fd(&self) -> RawFd {
        self.fd
    }

    fn begin(&self) -> bool {
        if !self.lock().rx_wanted() {
            return false;
        }
        self.gate.hold().is_ok()
    }

    fn service(&self, woken: &dyn Fn() -> bool) -> bool {
        let mut w = self.lock();
        if !w.rx_wanted() {
            return false;
        }
        w.process_rx(true);
        let again = std::mem::take(&mut w.rx_resume);
        let (irq, reset) = w.take_interrupts();
        let wanted = w.rx_wanted();
        drop(w);
        raise(&self.interrupt, irq, reset);
        if again && !woken() {
            // The interrupt went to another task (or waits for the CPU):
            // read the rest as the worker would.
            let mut w = self.lock();
            w.process_rx(false);
            let (irq, reset) = w.take_interrupts();
            let wanted = w.rx_wanted();
            drop(w);
            raise(&self.interrupt, irq, reset);
            return wanted;
        }
        // All read, or our own task was woken: frames still queued are then
        // the worker's once the gate is back on.
        wanted
    }

    fn end(&self) {
        self.gate.release();
    }
}

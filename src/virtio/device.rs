//! The seam between a transport and a device model.
//!
//! A transport ([`MmioTransport`](super::MmioTransport)) owns the register
//! file, negotiates features and validates queues; a device implements
//! [`VirtioDevice`] and does the device-type-specific work. The transport
//! calls every method on the thread holding the kernel's CPU lock, so no
//! method may block on I/O or call into the kernel: a device does its I/O
//! on a worker thread it starts in [`activate`](VirtioDevice::activate) and
//! stops (joining it) in [`reset`](VirtioDevice::reset).
//!
//! [`Interrupt`] is the device-to-kernel direction: the interrupt status
//! bits the driver reads, the configuration generation, and the callback
//! that raises the kernel's IRQ line.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use super::mem::GuestMemory;
use super::queue::Queue;

/// Raises the device's interrupt in the kernel (`lkl_trigger_irq(irq)` in
/// the real system). Called from the device's worker thread or from inside
/// a register write; it must not block.
pub type IrqCallback = Arc<dyn Fn() + Send + Sync>;

/// `InterruptStatus` bit: a used buffer notification.
pub const INT_USED_RING: u32 = 1;
/// `InterruptStatus` bit: a configuration change notification.
pub const INT_CONFIG: u32 = 2;

/// The device's interrupt line and the state behind it, shared between the
/// transport (which reads and acknowledges it) and the device's worker
/// (which signals it).
pub struct Interrupt {
    status: AtomicU32,
    config_generation: AtomicU32,
    needs_reset: AtomicBool,
    trigger: IrqCallback,
}

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupt")
            .field("status", &self.status())
            .field("config_generation", &self.config_generation())
            .field("needs_reset", &self.needs_reset())
            .finish()
    }
}

impl Interrupt {
    /// An idle interrupt that calls `trigger` to raise the line.
    pub fn new(trigger: IrqCallback) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            config_generation: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            trigger,
        }
    }

    /// Sets `bits` in `InterruptStatus` and raises the line if one of them
    /// was clear. If all were set, the kernel has not acknowledged them yet:
    /// its handler acknowledges first and then scans the queues, and our
    /// SeqCst read-modify-write orders the caller's used-ring updates before
    /// that acknowledgement, so it will see them without a second interrupt
    /// (and the kernel does not count a spurious one against the line).
    fn raise(&self, bits: u32) {
        let prev = self.status.fetch_or(bits, Ordering::SeqCst);
        if prev & bits != bits {
            (self.trigger)();
        }
    }

    /// Tells the driver that buffers were used (virtio 1.2, 4.2.2
    /// `InterruptStatus` bit 0).
    pub fn signal_used_queue(&self) {
        self.raise(INT_USED_RING);
    }

    /// Tells the driver that the configuration space changed: bumps
    /// `ConfigGeneration` first (4.2.2.1: "The device MUST change value
    /// returned in ConfigGeneration if there is any risk of a driver seeing
    /// an inconsistent configuration state"), then raises bit 1.
    pub fn signal_config_change(&self) {
        self.config_generation.fetch_add(1, Ordering::SeqCst);
        self.raise(INT_CONFIG);
    }

    /// Reports an unrecoverable device error: `DEVICE_NEEDS_RESET` appears
    /// in the status register and the driver gets a configuration change
    /// notification (2.1.2: a device setting DEVICE_NEEDS_RESET "MUST send a
    /// device configuration change notification to the driver").
    pub fn set_needs_reset(&self) {
        if !self.needs_reset.swap(true, Ordering::SeqCst) {
            self.signal_config_change();
        }
    }

    /// Current `InterruptStatus`.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// Current `ConfigGeneration`.
    pub fn config_generation(&self) -> u32 {
        self.config_generation.load(Ordering::SeqCst)
    }

    /// True once [`set_needs_reset`](Self::set_needs_reset) was called
    /// (until the device is reset).
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }

    /// `InterruptACK`: clears the acknowledged bits.
    pub(crate) fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Device reset: 4.2.2.1 "Upon reset, the device MUST clear all bits in
    /// InterruptStatus". The generation is kept, so a driver comparing it
    /// across the reset still sees a change if one happened.
    pub(crate) fn reset(&self) {
        self.status.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
    }
}

/// What a device gets when the driver sets `DRIVER_OK`.
#[derive(Debug)]
pub struct ActivateContext {
    /// The kernel's RAM.
    pub mem: GuestMemory,
    /// One validated queue per entry of
    /// [`queue_max_sizes`](VirtioDevice::queue_max_sizes), in order.
    pub queues: Vec<Queue>,
    /// The device's interrupt.
    pub interrupt: Arc<Interrupt>,
    /// The features the driver accepted.
    pub acked_features: u64,
}

/// Why a device could not be activated.
#[derive(Debug)]
pub enum ActivateError {
    /// The transport passed the wrong number of queues (a transport bug).
    QueueCount {
        /// Queues the device has.
        expected: usize,
        /// Queues it was given.
        got: usize,
    },
    /// The device is already active (a transport bug).
    AlreadyActive,
    /// The backend was lost (a previous worker died); the device cannot run
    /// again.
    BackendUnavailable,
    /// The host refused a resource (eventfd, thread) or the backend refused
    /// its configuration.
    Io(io::Error),
}

impl fmt::Display for ActivateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivateError::QueueCount { expected, got } => {
                write!(f, "device has {expected} queues, transport gave {got}")
            }
            ActivateError::AlreadyActive => write!(f, "device already active"),
            ActivateError::BackendUnavailable => {
                write!(f, "device backend lost by an earlier failure")
            }
            ActivateError::Io(e) => write!(f, "activating device: {e}"),
        }
    }
}

impl std::error::Error for ActivateError {}

impl From<io::Error> for ActivateError {
    fn from(e: io::Error) -> Self {
        ActivateError::Io(e)
    }
}

/// A virtio device model (after Firecracker's `VirtioDevice`, trimmed).
///
/// Every method runs on the kernel's CPU thread: none may block on I/O or
/// call into the kernel.
pub trait VirtioDevice: Send {
    /// The virtio device ID ([`device_id`](super::device_id)).
    fn device_type(&self) -> u32;

    /// Device-specific feature bits offered. The transport adds the
    /// transport-level ones ([`features::TRANSPORT`](super::features::TRANSPORT)).
    fn avail_features(&self) -> u64;

    /// Maximum size of each queue (each a power of two, at most 32768);
    /// the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// Size of the configuration space in bytes.
    fn config_len(&self) -> usize;

    /// Reads configuration space at `offset` (bytes past the end read as 0).
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// Writes configuration space at `offset`.
    fn write_config(&mut self, offset: u64, data: &[u8]);

    /// Whether the device accepts the driver's feature choice (checked when
    /// the driver sets `FEATURES_OK`; 2.2.1: otherwise the device "MUST fail
    /// to set the FEATURES_OK device status bit"). Unoffered bits never get
    /// here: the transport drops them.
    fn check_features(&self, _acked: u64) -> bool {
        true
    }

    /// Starts the device: the driver set `DRIVER_OK` with all queues valid.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;

    /// Stops the device: after this returns, the device touches neither
    /// guest memory nor the interrupt (its worker, if any, is joined), and
    /// it can be activated again.
    fn reset(&mut self);

    /// True between a successful `activate` and `reset`.
    fn is_activated(&self) -> bool;

    /// The driver notified queue `index` (`QueueNotify`). Must not block or
    /// call into the kernel (it may wake the worker, or do a little
    /// non-blocking work itself); `index` may be out of range.
    fn queue_notify(&self, index: u32);
}

/// A device's config space kept as bytes: what a driver read at `offset`
/// sees (zero past the end, as 4.2.2 lets a device answer).
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .copied()
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn counting() -> (Arc<AtomicUsize>, IrqCallback) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            n,
            Arc::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn raises_only_on_new_bits() {
        let (n, cb) = counting();
        let i = Interrupt::new(cb);
        i.signal_used_queue();
        i.signal_used_queue();
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "second signal coalesced until acked"
        );
        assert_eq!(i.status(), INT_USED_RING);
        i.ack(INT_USED_RING);
        assert_eq!(i.status(), 0);
        i.signal_used_queue();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        i.signal_config_change();
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert_eq!(i.status(), INT_USED_RING | INT_CONFIG);
        assert_eq!(i.config_generation(), 1);
        i.reset();
        assert_eq!(i.status(), 0);
        assert_eq!(i.config_generation(), 1);
    }

    #[test]
    fn needs_reset_signals_once() {
        let (n, cb) = counting();
        let i = Interrupt::new(cb);
        i.set_needs_reset();
        i.set_needs_reset();
        assert!(i.needs_reset());
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(i.status(), INT_CONFIG);
        i.reset();
        assert!(!i.needs_reset());
    }
}

//! Host-side virtio devices for the kernel, over virtio-mmio (version 2).
//!
//! The kernel finds a device through `virtio_mmio.device=<size>@0x<base>:<irq>`
//! on its command line; its register reads and writes at `base` reach the
//! host through the `iomem_access` host operation, which hands them to a
//! [`MmioTransport`]. Data moves through split virtqueues in the kernel's
//! RAM, which devices reach through [`GuestMemory`].
//!
//! ## Modules, bottom-up
//!
//! As in the crate's table (`src/lib.rs`), a module uses only modules of
//! lower layers; `tests/layers.rs` checks it. The items of this file
//! ([`device_id`], [`features`], [`status`]) belong to every layer.
//!
//! | layer | module | what it is |
//! |---|---|---|
//! | 0 | [`mem`] | [`GuestMemory`]: guest-physical addresses over the one host region holding the kernel's RAM, every access bounds-checked |
//! | 0 | [`metrics`] | counters, serialised as JSON |
//! | 0 | [`hostio`] | the libc edge: eventfds, `poll(2)`, packet sockets, vectored I/O |
//! | 1 | [`queue`] | our own split virtqueue (descriptor chains, indirect tables, used ring, EVENT_IDX), everything the kernel wrote treated as hostile |
//! | 2 | [`device`] | the [`VirtioDevice`] trait (the seam between transport and device) and [`Interrupt`], the device-to-kernel signal |
//! | 3 | [`mmio`] | [`MmioTransport`]: the register file, feature negotiation, the status state machine |
//! | 3 | [`worker`] | one thread per active device, sleeping in `poll(2)` on eventfds and backend fds, stopped and joined on reset |
//! | 4 | [`net`] | the virtio-net device, its [`NetBackend`] seam and the host backends |
//! | 4 | [`blk`] | the virtio-blk device over an image file |
//!
//! Everything below layer 4 is device-generic: [`net`] and [`blk`] share it.
//!
//! **Threads.** [`MmioTransport::read`]/[`MmioTransport::write`] run on
//! whichever thread holds the kernel's CPU lock. They never call into the
//! kernel and never wait on anything the kernel could be holding: a queue
//! notification is an eventfd write, and all backend I/O happens on the
//! device's worker thread. The one wait is a device reset (the kernel writing
//! 0 to `Status`), which stops and joins the worker; that is bounded because
//! a worker only ever sleeps in `poll` on an fd the reset signals, and its
//! I/O is non-blocking. Raising an interrupt calls the callback given to the
//! transport (the real one is `lkl_trigger_irq`), from the worker or from
//! inside a register write.
//!
//! **Unsafe code** lives only in [`mem`] (copies into and out of the
//! kernel's RAM), [`hostio`] and `net::backends::hostio` (libc calls) and
//! `net::backends::slirp::ffi` (the dlopen'ed libslirp); every other module
//! forbids it.

pub mod hostio;
pub mod mem;
pub mod metrics;

pub mod queue;

pub mod device;

pub mod mmio;
pub mod worker;

pub mod blk;
pub mod net;

#[cfg(test)]
pub(crate) mod test_utils;

pub use device::{ActivateContext, ActivateError, Interrupt, IrqCallback, VirtioDevice};
pub use mem::{GuestAddress, GuestMemory, MemError, RAM_PHYS_BASE};
pub use mmio::{MemoryProvider, MmioError, MmioTransport};
pub use net::{Net, NetBackend, NetError, SocketPairBackend};
pub use queue::{DescriptorChain, Queue, QueueConfig, QueueError};

/// Device IDs (virtio 1.2, 5 "Device Types").
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
}

/// Device-independent feature bits, as masks (virtio 1.2, 6 "Reserved
/// Feature Bits").
pub mod features {
    /// `VIRTIO_RING_F_INDIRECT_DESC` (bit 28): indirect descriptor tables.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// `VIRTIO_RING_F_EVENT_IDX` (bit 29): `used_event`/`avail_event`.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// `VIRTIO_F_VERSION_1` (bit 32): a non-legacy device; required by
    /// virtio-mmio version 2.
    pub const VERSION_1: u64 = 1 << 32;
    /// What the transport offers on behalf of every device: our queue
    /// implements these.
    pub const TRANSPORT: u64 = VERSION_1 | RING_EVENT_IDX | RING_INDIRECT_DESC;
}

/// Device status bits (virtio 1.2, 2.1 "Device Status Field").
pub mod status {
    /// The guest OS has noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest OS knows how to drive the device.
    pub const DRIVER: u32 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 128;
}

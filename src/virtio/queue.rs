//! Split virtqueues, device side (virtio 1.2, 2.7 "Split Virtqueues").
//!
//! [`QueueConfig`] is what the driver programs through the transport's queue
//! registers; [`Queue::new`] validates it against guest memory and yields a
//! [`Queue`] a device can process. The device loop is:
//!
//! ```text
//! queue.disable_notification()?;
//! loop {
//!     while let Some(chain) = queue.pop() {
//!         // read chain.reader(mem), write chain.writer(mem) ...
//!         queue.add_used(chain.head(), bytes_written)?;
//!     }
//!     if !queue.enable_notification()? { break; } // re-check after enabling
//! }
//! if queue.needs_notification()? { interrupt.signal_used_queue(); }
//! ```
//!
//! What this layer guarantees, whatever the kernel puts in memory:
//! - no panic, and no access outside guest memory (every range is checked by
//!   [`GuestMemory`], every sum with `checked_add`);
//! - bounded work: a chain is at most queue-size descriptors (plus at most
//!   queue-size in one indirect table), so a looping chain ends; an
//!   available index more than queue-size ahead marks the queue broken;
//! - each descriptor is copied out of guest memory once and validated after
//!   the copy, so the kernel rewriting it meanwhile cannot bypass a check;
//! - a malformed chain is counted in [`QueueMetrics`] and, through
//!   [`Queue::pop`], completed with length 0 so the driver gets its
//!   descriptors back (or skipped, when its head index is out of range).
//!
//! Each check cites the spec clause it mirrors. Ring indices are accessed
//! with atomics, with the barriers the spec asks of a device.
//!
//! Here: [`Queue`], the rings (popping available chains, publishing used
//! ones, notification suppression). Beside it: `config.rs` ([`QueueConfig`]
//! and its validation), `chain.rs` (descriptors, the walk of a chain,
//! [`DescriptorChain`]), `io.rs` ([`Reader`]/[`Writer`] over a chain's
//! buffers), `error.rs` ([`ChainError`], [`QueueError`]).

#![forbid(unsafe_code)]

mod chain;
mod config;
mod error;
mod io;
#[cfg(test)]
mod tests;

use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::features;
use super::mem::{GuestAddress, GuestMemory};
use super::metrics::Counter;

pub use chain::{
    Descriptor, DescriptorChain, Segment, DESCRIPTOR_SIZE, VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
pub use config::QueueConfig;
pub use error::{ChainError, QueueError};
pub use io::{Reader, Writer};

/// The largest queue size the split format allows (virtio 1.2, 2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Available-ring flag: the driver does not want used-buffer interrupts.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device does not want available-buffer notifications.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;
/// Size of one used-ring element.
const USED_ELEM_SIZE: u64 = 8;
/// Offset of `ring[]` in both the available and the used ring.
const RING_OFFSET: u64 = 4;

/// Per-queue counters of driver errors.
#[derive(Debug, Default, Serialize)]
pub struct QueueMetrics {
    /// Malformed chains (each completed with length 0, or skipped).
    pub invalid_chains: Counter,
    /// Available-ring entries naming a head past the table (skipped).
    pub invalid_heads: Counter,
    /// Times the available index ran more than a queue ahead.
    pub avail_overruns: Counter,
}

/// `vring_need_event` from the kernel's `virtio_ring.h`: true if moving the
/// used index from `old_idx` to `new_idx` passed `event_idx`, i.e. the
/// driver asked to be interrupted at an index in `old_idx..new_idx`
/// (virtio 1.2, 2.7.7.2, all arithmetic modulo 2^16).
pub fn vring_need_event(event_idx: u16, new_idx: u16, old_idx: u16) -> bool {
    new_idx.wrapping_sub(event_idx).wrapping_sub(1) < new_idx.wrapping_sub(old_idx)
}

/// A validated split virtqueue a device processes.
#[derive(Debug)]
pub struct Queue {
    mem: GuestMemory,
    size: u16,
    desc_table: GuestAddress,
    avail_ring: GuestAddress,
    used_ring: GuestAddress,
    next_avail: Wrapping<u16>,
    next_used: Wrapping<u16>,
    event_idx: bool,
    indirect: bool,
    /// Used index at the last `needs_notification` (0 at start: the
    /// driver's rings start empty, and Linux's `used_event` starts at 0).
    signalled_used: Wrapping<u16>,
    broken: bool,
    metrics: Arc<QueueMetrics>,
}

impl Queue {
    /// Validates `config` against `mem` and the negotiated `features`.
    pub fn new(mem: GuestMemory, config: &QueueConfig, features: u64) -> Result<Queue, QueueError> {
        if !config.ready {
            return Err(QueueError::NotReady);
        }
        config.validate(&mem)?;
        Ok(Queue {
            mem,
            size: config.size,
            desc_table: config.desc_table,
            avail_ring: config.avail_ring,
            used_ring: config.used_ring,
            next_avail: Wrapping(0),
            next_used: Wrapping(0),
            event_idx: features & features::RING_EVENT_IDX != 0,
            indirect: features & features::RING_INDIRECT_DESC != 0,
            signalled_used: Wrapping(0),
            broken: false,
            metrics: Arc::new(QueueMetrics::default()),
        })
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The guest memory this queue lives in.
    pub fn mem(&self) -> &GuestMemory {
        &self.mem
    }

    /// This queue's error counters.
    pub fn metrics(&self) -> Arc<QueueMetrics> {
        self.metrics.clone()
    }

    /// True once the driver corrupted the available ring; the queue is then
    /// left alone until the device is reset.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The next available-ring position this queue will read.
    pub fn next_avail(&self) -> u16 {
        self.next_avail.0
    }

    /// The used index as last published.
    pub fn next_used(&self) -> u16 {
        self.next_used.0
    }

    // Addresses below cannot overflow: the areas were checked to lie inside
    // guest memory, whose end is representable, and `slot < size`.

    fn avail_idx_addr(&self) -> GuestAddress {
        GuestAddress(self.avail_ring.0 + 2)
    }

    fn avail_ring_addr(&self, slot: u16) -> GuestAddress {
        GuestAddress(self.avail_ring.0 + RING_OFFSET + 2 * u64::from(slot))
    }

    fn used_event_addr(&self) -> GuestAddress {
        self.avail_ring_addr(self.size)
    }

    fn used_idx_addr(&self) -> GuestAddress {
        GuestAddress(self.used_ring.0 + 2)
    }

    fn used_elem_addr(&self, slot: u16) -> GuestAddress {
        GuestAddress(self.used_ring.0 + RING_OFFSET + USED_ELEM_SIZE * u64::from(slot))
    }

    fn avail_event_addr(&self) -> GuestAddress {
        self.used_elem_addr(self.size)
    }

    fn slot(&self, idx: Wrapping<u16>) -> u16 {
        // size is a power of two (validated), so this is idx % size.
        idx.0 & (self.size - 1)
    }

    /// The driver's available index. Acquire: the ring entries and
    /// descriptors it covers are read after it (2.7.13.3.1: the driver
    /// "MUST perform a suitable memory barrier before the idx update").
    pub fn avail_idx(&self) -> Result<u16, QueueError> {
        Ok(self
            .mem
            .load_u16(self.avail_idx_addr(), Ordering::Acquire)?)
    }

    /// True if the driver has made chains available we have not popped.
    /// A broken queue reports [`QueueError::Broken`], so that a device loop
    /// "pop until empty, re-check" cannot spin on a ring it will never pop.
    pub fn has_available(&self) -> Result<bool, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        Ok(Wrapping(self.avail_idx()?) != self.next_avail)
    }

    /// Pops the next available chain: `Ok(None)` if there is none, an
    /// `InvalidChain` error (entry consumed) if it is malformed. Lower level
    /// than [`pop`](Self::pop), which completes malformed chains itself.
    pub fn pop_chain(&mut self) -> Result<Option<DescriptorChain>, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let avail_idx = Wrapping(self.avail_idx()?);
        let pending = (avail_idx - self.next_avail).0;
        if pending == 0 {
            return Ok(None);
        }
        // 2.7.6.1: "A driver MUST NOT decrement the available idx", and the
        // ring only holds `size` entries (2.7.13), so it can never be more
        // than a queue ahead of us. If it is, the ring is corrupt.
        if pending > self.size {
            self.broken = true;
            self.metrics.avail_overruns.inc();
            return Err(QueueError::AvailOverrun {
                avail_idx: avail_idx.0,
                next_avail: self.next_avail.0,
            });
        }
        let head = self
            .mem
            .read_u16(self.avail_ring_addr(self.slot(self.next_avail)))?;
        self.next_avail += 1;
        match self.parse_chain(head) {
            Ok(chain) => Ok(Some(chain)),
            Err(error) => {
                self.metrics.invalid_chains.inc();
                if matches!(error, ChainError::HeadOutOfRange { .. }) {
                    self.metrics.invalid_heads.inc();
                }
                Err(QueueError::InvalidChain { head, error })
            }
        }
    }

    /// Pops the next valid chain. Malformed chains met on the way are
    /// completed with length 0 (so the driver can reclaim them) or, if their
    /// head is out of range, skipped; both are counted. Returns `None` when
    /// nothing is available or the queue is broken.
    pub fn pop(&mut self) -> Option<DescriptorChain> {
        loop {
            match self.pop_chain() {
                Ok(chain) => return chain,
                Err(QueueError::InvalidChain { head, .. }) => {
                    // Fails only for a head past the table: nothing to
                    // give back then.
                    let _ = self.add_used(head, 0);
                }
                Err(_) => return None,
            }
        }
    }

    /// Puts the last popped chain back, to be popped again later (a device
    /// that found no room for it). Only valid if that chain was not
    /// completed.
    pub fn undo_pop(&mut self) {
        self.next_avail -= 1;
    }

    /// Writes one used element without publishing it.
    fn write_used(&mut self, head: u16, len: u32) -> Result<(), QueueError> {
        if head >= self.size {
            return Err(QueueError::UsedHeadOutOfRange(head));
        }
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        self.mem
            .write(self.used_elem_addr(self.slot(self.next_used)), &elem)?;
        self.next_used += 1;
        Ok(())
    }

    fn publish_used(&self) -> Result<(), QueueError> {
        // 2.7.8.2: "The device MUST set len prior to updating the used idx";
        // Release orders the element writes before the index store.
        self.mem
            .store_u16(self.used_idx_addr(), self.next_used.0, Ordering::Release)?;
        Ok(())
    }

    /// Returns a chain to the driver with `len` bytes written into it.
    pub fn add_used(&mut self, head: u16, len: u32) -> Result<(), QueueError> {
        self.write_used(head, len)?;
        self.publish_used()
    }

    /// Returns several chains at once, made visible to the driver by a
    /// single index update (a mergeable receive buffer must appear whole).
    /// Nothing is written if any head is out of range.
    pub fn add_used_batch(&mut self, elems: &[(u16, u32)]) -> Result<(), QueueError> {
        if let Some(&(h, _)) = elems.iter().find(|(h, _)| *h >= self.size) {
            return Err(QueueError::UsedHeadOutOfRange(h));
        }
        for &(head, len) in elems {
            self.write_used(head, len)?;
        }
        self.publish_used()
    }

    /// Whether the driver wants an interrupt for what was used since the
    /// last call (virtio 1.2, 2.7.7.2): with EVENT_IDX, when the used index
    /// passed `used_event`; without, unless `VIRTQ_AVAIL_F_NO_INTERRUPT` is
    /// set. False if nothing was used since the last call.
    pub fn needs_notification(&mut self) -> Result<bool, QueueError> {
        let new = self.next_used;
        let old = std::mem::replace(&mut self.signalled_used, new);
        if old == new {
            return Ok(false);
        }
        // Our used-index store must be visible before we read the driver's
        // suppression fields, or we could miss its request (the driver does
        // the mirror image: update used_event, barrier, re-read used idx).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let used_event = self
                .mem
                .load_u16(self.used_event_addr(), Ordering::Relaxed)?;
            Ok(vring_need_event(used_event, new.0, old.0))
        } else {
            let flags = self.mem.load_u16(self.avail_ring, Ordering::Relaxed)?;
            Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Asks the driver to notify us of new buffers (virtio 1.2, 2.7.10.2):
    /// with EVENT_IDX, `avail_event` = our next index; without, clears
    /// `VIRTQ_USED_F_NO_NOTIFY`. Returns true if buffers arrived meanwhile,
    /// which the caller must then process (it may not get a notification
    /// for them).
    pub fn enable_notification(&mut self) -> Result<bool, QueueError> {
        if self.event_idx {
            self.mem.store_u16(
                self.avail_event_addr(),
                self.next_avail.0,
                Ordering::Relaxed,
            )?;
        } else {
            self.mem.store_u16(self.used_ring, 0, Ordering::Relaxed)?;
        }
        // Publish the store before re-reading the index: pairs with the
        // driver's barrier between its avail idx update and reading
        // avail_event/flags (2.7.13.4.1).
        fence(Ordering::SeqCst);
        self.has_available()
    }

    /// Tells the driver notifications are not needed while we drain the
    /// queue (only meaningful without EVENT_IDX: 2.7.10.2 has the device set
    /// `flags` to 0 with EVENT_IDX).
    pub fn disable_notification(&mut self) -> Result<(), QueueError> {
        if !self.event_idx {
            self.mem
                .store_u16(self.used_ring, VIRTQ_USED_F_NO_NOTIFY, Ordering::Relaxed)?;
        }
        Ok(())
    }
}

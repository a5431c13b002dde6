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

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::features;
use super::mem::{GuestAddress, GuestMemory, MemError};
use super::metrics::Counter;

/// The largest queue size the split format allows (virtio 1.2, 2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of indirect descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver does not want used-buffer interrupts.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device does not want available-buffer notifications.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Size of one descriptor in the table.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// Size of one used-ring element.
const USED_ELEM_SIZE: u64 = 8;
/// Offset of `ring[]` in both the available and the used ring.
const RING_OFFSET: u64 = 4;

/// One descriptor as laid out in the table (`struct virtq_desc`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length of the buffer in bytes.
    pub len: u32,
    /// `VIRTQ_DESC_F_*`.
    pub flags: u16,
    /// Next descriptor index, if `flags` has `VIRTQ_DESC_F_NEXT`.
    pub next: u16,
}

impl Descriptor {
    /// Decodes the little-endian layout.
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = *b;
        Descriptor {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        }
    }

    /// Encodes the little-endian layout.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0; 16];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..16].copy_from_slice(&self.next.to_le_bytes());
        b
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Why a descriptor chain was rejected. Every variant is the driver's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// An available-ring entry named a head past the descriptor table.
    HeadOutOfRange {
        /// The head index.
        head: u16,
        /// The queue size.
        size: u16,
    },
    /// A `next` field pointed past the end of its table.
    NextOutOfRange {
        /// The `next` value.
        next: u16,
        /// Entries in the table it indexes.
        table_len: u32,
    },
    /// The chain was longer than its table allows: a loop, or more
    /// descriptors than the queue size.
    TooLong,
    /// The buffers added up to 2^32 bytes or more.
    TooManyBytes,
    /// A buffer lies (partly) outside guest memory.
    AddressOutOfRange {
        /// Its guest-physical address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A device-readable buffer followed a device-writable one.
    ReadableAfterWritable,
    /// An indirect descriptor, but `VIRTIO_RING_F_INDIRECT_DESC` was not
    /// negotiated.
    IndirectNotNegotiated,
    /// An indirect descriptor inside an indirect table.
    NestedIndirect,
    /// An indirect descriptor with `VIRTQ_DESC_F_NEXT` also set.
    IndirectWithNext,
    /// An indirect table whose length is zero or not a multiple of 16.
    IndirectBadLength(u32),
    /// An indirect table with more entries than the queue size.
    IndirectTooLarge(u32),
    /// Reading a descriptor failed.
    Memory(MemError),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::HeadOutOfRange { head, size } => {
                write!(
                    f,
                    "driver made head {head} available in a queue of size {size}"
                )
            }
            ChainError::NextOutOfRange { next, table_len } => {
                write!(
                    f,
                    "driver chained to descriptor {next} of a {table_len}-entry table"
                )
            }
            ChainError::TooLong => write!(f, "driver gave a looping or over-long descriptor chain"),
            ChainError::TooManyBytes => {
                write!(f, "driver gave a descriptor chain of 4 GiB or more")
            }
            ChainError::AddressOutOfRange { addr, len } => {
                write!(
                    f,
                    "driver gave a buffer {addr:#x}+{len:#x} outside guest memory"
                )
            }
            ChainError::ReadableAfterWritable => {
                write!(
                    f,
                    "driver put a device-readable buffer after a device-writable one"
                )
            }
            ChainError::IndirectNotNegotiated => {
                write!(
                    f,
                    "driver used an indirect descriptor without negotiating it"
                )
            }
            ChainError::NestedIndirect => write!(f, "driver nested an indirect table"),
            ChainError::IndirectWithNext => write!(f, "driver set NEXT on an indirect descriptor"),
            ChainError::IndirectBadLength(l) => {
                write!(f, "driver gave an indirect table of {l} bytes")
            }
            ChainError::IndirectTooLarge(n) => {
                write!(
                    f,
                    "driver gave an indirect table of {n} entries, more than the queue size"
                )
            }
            ChainError::Memory(e) => write!(f, "reading a descriptor: {e}"),
        }
    }
}

impl std::error::Error for ChainError {}

/// Errors of queue setup and processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue was not made ready by the driver.
    NotReady,
    /// The driver chose a size that is zero, not a power of two, or above
    /// the device's maximum (or the device declared an invalid maximum).
    InvalidSize {
        /// The size.
        size: u16,
        /// The maximum.
        max: u16,
    },
    /// A ring area is not aligned as the spec requires.
    Misaligned {
        /// Which area ("descriptor table", "available ring", "used ring").
        area: &'static str,
        /// Its guest-physical address.
        addr: u64,
    },
    /// A ring area lies (partly) outside guest memory.
    AreaOutOfRange {
        /// Which area.
        area: &'static str,
        /// Its guest-physical address.
        addr: u64,
        /// Its size.
        len: u64,
    },
    /// The available index ran more than a queue size ahead of us.
    AvailOverrun {
        /// The driver's available index.
        avail_idx: u16,
        /// The next entry we would have read.
        next_avail: u16,
    },
    /// A malformed chain; its avail entry was consumed.
    InvalidChain {
        /// The chain's head index.
        head: u16,
        /// What was wrong.
        error: ChainError,
    },
    /// A device tried to complete a head index past the table.
    UsedHeadOutOfRange(u16),
    /// The queue was marked broken by an earlier error and is not processed
    /// until the device is reset.
    Broken,
    /// Guest memory access failed.
    Memory(MemError),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NotReady => write!(f, "queue not ready"),
            QueueError::InvalidSize { size, max } => {
                write!(f, "invalid queue size {size} (maximum {max}, must be a power of two)")
            }
            QueueError::Misaligned { area, addr } => write!(f, "driver misaligned the {area} at {addr:#x}"),
            QueueError::AreaOutOfRange { area, addr, len } => {
                write!(f, "driver put the {area} at {addr:#x}+{len:#x}, outside guest memory")
            }
            QueueError::AvailOverrun { avail_idx, next_avail } => write!(
                f,
                "driver moved the available index to {avail_idx}, more than a queue ahead of {next_avail}"
            ),
            QueueError::InvalidChain { head, error } => write!(f, "chain at head {head}: {error}"),
            QueueError::UsedHeadOutOfRange(h) => write!(f, "device completed head {h}, past the table"),
            QueueError::Broken => write!(f, "queue broken by an earlier driver error"),
            QueueError::Memory(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl From<MemError> for QueueError {
    fn from(e: MemError) -> Self {
        QueueError::Memory(e)
    }
}

/// What the driver programmed through the queue registers (virtio 1.2,
/// 4.2.3.2 "Virtqueue Configuration"), before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The device's maximum size (`QueueNumMax`).
    pub max_size: u16,
    /// The size the driver chose (`QueueNum`).
    pub size: u16,
    /// `QueueReady`.
    pub ready: bool,
    /// Descriptor Area (`QueueDescLow/High`).
    pub desc_table: GuestAddress,
    /// Driver Area, the available ring (`QueueDriverLow/High`).
    pub avail_ring: GuestAddress,
    /// Device Area, the used ring (`QueueDeviceLow/High`).
    pub used_ring: GuestAddress,
}

impl QueueConfig {
    /// A queue in its reset state, with the given maximum size.
    pub fn new(max_size: u16) -> Self {
        QueueConfig {
            max_size,
            size: max_size,
            ready: false,
            desc_table: GuestAddress(0),
            avail_ring: GuestAddress(0),
            used_ring: GuestAddress(0),
        }
    }

    /// Back to the reset state (the maximum is kept).
    pub fn reset(&mut self) {
        *self = QueueConfig::new(self.max_size);
    }

    /// Checks size, alignment and placement in `mem` (readiness is checked
    /// by [`Queue::new`]).
    pub fn validate(&self, mem: &GuestMemory) -> Result<(), QueueError> {
        // 2.7: "Queue Size value is always a power of 2. The maximum Queue
        // Size value is 32768." 4.2.2.2: "The driver MUST write a value to
        // QueueNum which is less than or equal to the value presented by the
        // device in QueueNumMax."
        let valid = |n: u16| n != 0 && n.is_power_of_two() && n <= MAX_QUEUE_SIZE;
        if !valid(self.max_size) || !valid(self.size) || self.size > self.max_size {
            return Err(QueueError::InvalidSize {
                size: self.size,
                max: self.max_size,
            });
        }
        let size = u64::from(self.size);
        // 2.7 table and 2.7.1 "The driver MUST ensure that the physical
        // address of the first byte of each virtqueue part is a multiple of
        // the specified alignment value". Sizes: size <= 2^15, so none of
        // these products or sums can overflow a u64.
        let areas = [
            (
                "descriptor table",
                self.desc_table,
                16,
                DESCRIPTOR_SIZE * size,
            ),
            ("available ring", self.avail_ring, 2, 6 + 2 * size),
            ("used ring", self.used_ring, 4, 6 + USED_ELEM_SIZE * size),
        ];
        for (area, addr, align, len) in areas {
            if addr.0 % align != 0 {
                return Err(QueueError::Misaligned { area, addr: addr.0 });
            }
            mem.check_range(addr, len)
                .map_err(|_| QueueError::AreaOutOfRange {
                    area,
                    addr: addr.0,
                    len,
                })?;
        }
        Ok(())
    }
}

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

/// One buffer of a descriptor chain, already checked to lie inside guest
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// A validated descriptor chain: device-readable segments, then
/// device-writable ones, all inside guest memory, under 4 GiB in total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorChain {
    head: u16,
    segments: Vec<Segment>,
    readable: usize,
    readable_len: u32,
    writable_len: u32,
}

impl DescriptorChain {
    fn new(head: u16) -> Self {
        DescriptorChain {
            head,
            segments: Vec::with_capacity(4),
            readable: 0,
            readable_len: 0,
            writable_len: 0,
        }
    }

    fn push(&mut self, mem: &GuestMemory, d: &Descriptor) -> Result<(), ChainError> {
        let addr = GuestAddress(d.addr);
        mem.check_range(addr, u64::from(d.len))
            .map_err(|_| ChainError::AddressOutOfRange {
                addr: d.addr,
                len: d.len,
            })?;
        // 2.7.5.2: "Drivers MUST NOT add a descriptor chain longer than 2^32
        // bytes in total".
        let total = self.readable_len.checked_add(self.writable_len);
        total
            .and_then(|t| t.checked_add(d.len))
            .ok_or(ChainError::TooManyBytes)?;
        let seg = Segment { addr, len: d.len };
        if d.has(VIRTQ_DESC_F_WRITE) {
            self.writable_len += d.len; // cannot overflow: total checked above
            self.segments.push(seg);
        } else {
            // 2.7.4.2: "The driver MUST place any device-writable descriptor
            // elements after any device-readable descriptor elements."
            if self.segments.len() > self.readable {
                return Err(ChainError::ReadableAfterWritable);
            }
            self.readable_len += d.len;
            self.readable += 1;
            self.segments.push(seg);
        }
        Ok(())
    }

    /// Index of the chain's first descriptor, to hand back in the used ring.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The device-readable segments, in order.
    pub fn readable(&self) -> &[Segment] {
        &self.segments[..self.readable]
    }

    /// The device-writable segments, in order.
    pub fn writable(&self) -> &[Segment] {
        &self.segments[self.readable..]
    }

    /// Total bytes the device may read.
    pub fn readable_len(&self) -> u32 {
        self.readable_len
    }

    /// Total bytes the device may write.
    pub fn writable_len(&self) -> u32 {
        self.writable_len
    }

    /// An `io::Read` over the readable segments.
    pub fn reader<'a>(&'a self, mem: &'a GuestMemory) -> Reader<'a> {
        Reader {
            cursor: Cursor::new(mem, self.readable(), self.readable_len),
        }
    }

    /// An `io::Write` over the writable segments.
    pub fn writer<'a>(&'a self, mem: &'a GuestMemory) -> Writer<'a> {
        Writer {
            cursor: Cursor::new(mem, self.writable(), self.writable_len),
            written: 0,
        }
    }
}

/// A position in a list of segments.
struct Cursor<'a> {
    mem: &'a GuestMemory,
    segs: &'a [Segment],
    seg: usize,
    off: u32,
    remaining: usize,
}

impl<'a> Cursor<'a> {
    fn new(mem: &'a GuestMemory, segs: &'a [Segment], total: u32) -> Self {
        Cursor {
            mem,
            segs,
            seg: 0,
            off: 0,
            remaining: total as usize,
        }
    }

    /// Moves up to `len` bytes, calling `f(addr, pos, n)` for each
    /// contiguous piece. Returns how many bytes were moved.
    fn advance(
        &mut self,
        len: usize,
        mut f: impl FnMut(GuestAddress, usize, usize) -> Result<(), MemError>,
    ) -> io::Result<usize> {
        let mut done = 0;
        while done < len {
            let Some(s) = self.segs.get(self.seg) else {
                break;
            };
            let left = (s.len - self.off) as usize; // off <= len, kept below
            if left == 0 {
                self.seg += 1;
                self.off = 0;
                continue;
            }
            let n = left.min(len - done);
            // Cannot overflow: the whole segment was checked to be inside
            // guest memory when the chain was parsed.
            let addr = s
                .addr
                .checked_add(u64::from(self.off))
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
            f(addr, done, n).map_err(io::Error::other)?;
            done += n;
            self.off += n as u32; // n <= left, so off stays <= s.len
            self.remaining -= n;
        }
        Ok(done)
    }
}

/// Reads a chain's device-readable bytes as one stream.
pub struct Reader<'a> {
    cursor: Cursor<'a>,
}

impl Reader<'_> {
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.cursor.remaining
    }
}

impl io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mem = self.cursor.mem;
        self.cursor.advance(buf.len(), |addr, pos, n| {
            mem.read(addr, &mut buf[pos..pos + n])
        })
    }
}

/// Writes a chain's device-writable bytes as one stream.
pub struct Writer<'a> {
    cursor: Cursor<'a>,
    written: usize,
}

impl Writer<'_> {
    /// Room left.
    pub fn available(&self) -> usize {
        self.cursor.remaining
    }

    /// Bytes written so far (the used-ring length to report).
    pub fn written(&self) -> usize {
        self.written
    }
}

impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mem = self.cursor.mem;
        let n = self.cursor.advance(buf.len(), |addr, pos, n| {
            mem.write(addr, &buf[pos..pos + n])
        })?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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

    fn read_descriptor(&self, table: GuestAddress, index: u32) -> Result<Descriptor, ChainError> {
        // index < table_len <= 2^15 and the table was checked to lie inside
        // guest memory, so this cannot overflow.
        let addr = table
            .checked_add(u64::from(index) * DESCRIPTOR_SIZE)
            .ok_or(ChainError::Memory(MemError::OutOfRange {
                addr: table.0,
                len: DESCRIPTOR_SIZE,
            }))?;
        let mut b = [0u8; 16];
        self.mem.read(addr, &mut b).map_err(ChainError::Memory)?;
        Ok(Descriptor::from_bytes(&b))
    }

    /// Walks the chain at `head`, copying each descriptor once and checking
    /// it before following it.
    fn parse_chain(&self, head: u16) -> Result<DescriptorChain, ChainError> {
        if head >= self.size {
            return Err(ChainError::HeadOutOfRange {
                head,
                size: self.size,
            });
        }
        let mut chain = DescriptorChain::new(head);
        let mut table = self.desc_table;
        let mut table_len = u32::from(self.size);
        let mut index = u32::from(head);
        // 2.7.5: "The number of descriptors in the table is defined by the
        // queue size for this virtqueue: this is the maximum possible
        // descriptor chain length"; 2.7.5.2: loops are forbidden. A chain
        // may take at most this many hops, so a loop ends.
        let mut ttl = table_len;
        let mut in_indirect = false;
        loop {
            if ttl == 0 {
                return Err(ChainError::TooLong);
            }
            ttl -= 1;
            let desc = self.read_descriptor(table, index)?;
            if desc.has(VIRTQ_DESC_F_INDIRECT) {
                // 2.7.5.3.1: "The driver MUST NOT set the
                // VIRTQ_DESC_F_INDIRECT flag unless the
                // VIRTIO_F_INDIRECT_DESC feature was negotiated."
                if !self.indirect {
                    return Err(ChainError::IndirectNotNegotiated);
                }
                // 2.7.5.3.1: "The driver MUST NOT set the
                // VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor".
                if in_indirect {
                    return Err(ChainError::NestedIndirect);
                }
                // 2.7.5.3.1: "A driver MUST NOT set both
                // VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT in flags."
                if desc.has(VIRTQ_DESC_F_NEXT) {
                    return Err(ChainError::IndirectWithNext);
                }
                // 2.7.5.3: the table holds `len / 16` descriptors.
                if desc.len == 0 || u64::from(desc.len) % DESCRIPTOR_SIZE != 0 {
                    return Err(ChainError::IndirectBadLength(desc.len));
                }
                let count = desc.len / DESCRIPTOR_SIZE as u32;
                // 2.7.5.3.1: "A driver MUST NOT create a descriptor chain
                // longer than the Queue Size of the device."
                if count > u32::from(self.size) {
                    return Err(ChainError::IndirectTooLarge(count));
                }
                let addr = GuestAddress(desc.addr);
                self.mem
                    .check_range(addr, u64::from(desc.len))
                    .map_err(|_| ChainError::AddressOutOfRange {
                        addr: desc.addr,
                        len: desc.len,
                    })?;
                // 2.7.5.3.2: the device "MUST ignore the write-only flag" of
                // this descriptor, and "MUST handle the case of zero or more
                // normal chained descriptors followed by a single descriptor
                // with flags&VIRTQ_DESC_F_INDIRECT": the rest of the chain
                // is the table's, starting at its entry 0.
                table = addr;
                table_len = count;
                index = 0;
                ttl = count;
                in_indirect = true;
                continue;
            }
            chain.push(&self.mem, &desc)?;
            if !desc.has(VIRTQ_DESC_F_NEXT) {
                return Ok(chain);
            }
            if u32::from(desc.next) >= table_len {
                return Err(ChainError::NextOutOfRange {
                    next: desc.next,
                    table_len,
                });
            }
            index = u32::from(desc.next);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::virtio::mem::{GuardedMemory, RAM_PHYS_BASE};
    use crate::virtio::test_utils::{Buf, DriverQueue, XorShift};

    const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);
    const ALL: u64 = features::RING_EVENT_IDX | features::RING_INDIRECT_DESC;

    fn addr(off: u64) -> GuestAddress {
        GuestAddress(RAM_PHYS_BASE + off)
    }

    fn setup(size: u16, features: u64) -> (GuestMemory, DriverQueue, Queue) {
        let mem = GuestMemory::new_owned(1 << 20, BASE).unwrap();
        let dq = DriverQueue::new(&mem, BASE, size);
        let q = Queue::new(mem.clone(), &dq.config(size), features).unwrap();
        (mem, dq, q)
    }

    #[test]
    fn config_validation() {
        let mem = GuestMemory::new_owned(1 << 16, BASE).unwrap();
        let dq = DriverQueue::new(&mem, BASE, 16);
        let good = dq.config(16);
        assert!(good.validate(&mem).is_ok());
        assert!(Queue::new(mem.clone(), &good, 0).is_ok());

        let mut c = good.clone();
        c.ready = false;
        assert_eq!(
            Queue::new(mem.clone(), &c, 0).unwrap_err(),
            QueueError::NotReady
        );

        for (size, max) in [(0, 16), (12, 16), (32, 16), (16, 0), (16, 24)] {
            let mut c = good.clone();
            c.size = size;
            c.max_size = max;
            assert_eq!(
                c.validate(&mem),
                Err(QueueError::InvalidSize { size, max }),
                "size {size} max {max}"
            );
        }
        let mut c = good.clone();
        c.size = 8; // smaller than the maximum is fine
        assert!(c.validate(&mem).is_ok());

        let mut c = good.clone();
        c.desc_table = GuestAddress(c.desc_table.0 + 8);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::Misaligned {
                area: "descriptor table",
                ..
            })
        ));
        let mut c = good.clone();
        c.avail_ring = GuestAddress(c.avail_ring.0 + 1);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::Misaligned {
                area: "available ring",
                ..
            })
        ));
        let mut c = good.clone();
        c.used_ring = GuestAddress(c.used_ring.0 + 2);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::Misaligned {
                area: "used ring",
                ..
            })
        ));

        let mut c = good.clone();
        c.used_ring = GuestAddress(mem.end().0 - 8);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::AreaOutOfRange {
                area: "used ring",
                ..
            })
        ));
        let mut c = good.clone();
        c.desc_table = GuestAddress(0);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::AreaOutOfRange { .. })
        ));
        let mut c = good;
        c.avail_ring = GuestAddress(u64::MAX - 1);
        assert!(matches!(
            c.validate(&mem),
            Err(QueueError::AreaOutOfRange { .. })
        ));
    }

    #[test]
    fn simple_chain() {
        let (mem, mut dq, mut q) = setup(16, 0);
        assert_eq!(q.pop(), None);
        mem.write(addr(0x8000), b"hello").unwrap();
        let head = dq.add_chain(&[Buf::r(addr(0x8000), 5)]);
        assert!(q.has_available().unwrap());
        let c = q.pop().unwrap();
        assert_eq!(c.head(), head);
        assert_eq!((c.readable_len(), c.writable_len()), (5, 0));
        let mut s = String::new();
        c.reader(&mem).read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        q.add_used(c.head(), 0).unwrap();
        assert_eq!(dq.pop_used(), Some((u32::from(head), 0)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn multi_descriptor_chain() {
        let (mem, mut dq, mut q) = setup(16, 0);
        mem.write(addr(0x8000), b"abc").unwrap();
        mem.write(addr(0x9000), b"defg").unwrap();
        let head = dq.add_chain(&[
            Buf::r(addr(0x8000), 3),
            Buf::r(addr(0x9000), 4),
            Buf::w(addr(0xa000), 2),
            Buf::w(addr(0xb000), 10),
        ]);
        let c = q.pop().unwrap();
        assert_eq!(c.readable().len(), 2);
        assert_eq!(c.writable().len(), 2);
        assert_eq!((c.readable_len(), c.writable_len()), (7, 12));
        let mut r = c.reader(&mem);
        let mut buf = [0u8; 7];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abcdefg");
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        let mut w = c.writer(&mem);
        w.write_all(b"0123456789").unwrap();
        assert_eq!((w.written(), w.available()), (10, 2));
        assert_eq!(
            w.write(b"abcdef").unwrap(),
            2,
            "stops at the end of the chain"
        );
        assert_eq!(w.write(b"x").unwrap(), 0);
        let mut out = [0u8; 10];
        mem.read(addr(0xb000), &mut out).unwrap();
        assert_eq!(&out, b"23456789ab");
        mem.read(addr(0xa000), &mut out[..2]).unwrap();
        assert_eq!(&out[..2], b"01");
        q.add_used(c.head(), 12).unwrap();
        assert_eq!(dq.pop_used(), Some((u32::from(head), 12)));
    }

    #[test]
    fn indirect_chain() {
        let (mem, mut dq, mut q) = setup(16, ALL);
        mem.write(addr(0x8000), b"xyz").unwrap();
        let head = dq.add_indirect(
            addr(0x7000),
            &[
                Buf::r(addr(0x8000), 3),
                Buf::w(addr(0x9000), 4),
                Buf::w(addr(0xa000), 4),
            ],
        );
        let c = q.pop().unwrap();
        assert_eq!(c.head(), head);
        assert_eq!((c.readable().len(), c.writable().len()), (1, 2));
        assert_eq!((c.readable_len(), c.writable_len()), (3, 8));
        let mut s = String::new();
        c.reader(&mem).read_to_string(&mut s).unwrap();
        assert_eq!(s, "xyz");
    }

    #[test]
    fn direct_then_indirect() {
        // 2.7.5.3.2: zero or more normal descriptors, then one indirect.
        let (mem, mut dq, mut q) = setup(16, ALL);
        let table = addr(0x7000);
        dq.write_table(table, &[Buf::w(addr(0x9000), 6)]);
        let head = dq.add_raw_chain(&[
            Descriptor {
                addr: addr(0x8000).0,
                len: 2,
                flags: 0,
                next: 0,
            },
            Descriptor {
                addr: table.0,
                len: 16,
                flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, // WRITE ignored
                next: 0,
            },
        ]);
        let c = q.pop().unwrap();
        assert_eq!(c.head(), head);
        assert_eq!((c.readable_len(), c.writable_len()), (2, 6));
        let _ = mem;
    }

    /// Pops the chain just published through `pop_chain`, expecting
    /// `error`; then rewinds and checks that `pop` completes it with length 0
    /// (and counts it again).
    fn expect_invalid(dq: &mut DriverQueue, q: &mut Queue, head: u16, error: ChainError) {
        let before = q.metrics().invalid_chains.get();
        match q.pop_chain() {
            Err(QueueError::InvalidChain { head: h, error: e }) => {
                assert_eq!((h, e), (head, error));
            }
            other => panic!("expected {error:?}, got {other:?}"),
        }
        q.undo_pop();
        assert_eq!(q.pop(), None);
        assert_eq!(q.metrics().invalid_chains.get(), before + 2);
        assert_eq!(dq.pop_used(), Some((u32::from(head), 0)));
    }

    #[test]
    fn looping_chain_rejected() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        let d = |next| Descriptor {
            addr: addr(0x8000).0,
            len: 4,
            flags: VIRTQ_DESC_F_NEXT,
            next,
        };
        dq.write_desc(0, d(1));
        dq.write_desc(1, d(2));
        dq.write_desc(2, d(0));
        dq.publish(0);
        expect_invalid(&mut dq, &mut q, 0, ChainError::TooLong);
        // A self-loop too.
        dq.write_desc(3, d(3));
        dq.publish(3);
        expect_invalid(&mut dq, &mut q, 3, ChainError::TooLong);
    }

    #[test]
    fn longest_legal_chain_accepted() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        let bufs: Vec<_> = (0..8).map(|i| Buf::r(addr(0x8000 + i * 16), 16)).collect();
        dq.add_chain(&bufs);
        let c = q.pop().unwrap();
        assert_eq!(c.readable().len(), 8);
    }

    #[test]
    fn out_of_range_addresses_rejected() {
        let (mem, mut dq, mut q) = setup(8, ALL);
        let end = mem.end().0;
        for (a, len) in [
            (end - 4, 8u32),
            (end, 1),
            (RAM_PHYS_BASE - 1, 2),
            (0, 1),
            (u64::MAX, 2),
        ] {
            let head = dq.add_chain(&[Buf::r(GuestAddress(a), len)]);
            expect_invalid(
                &mut dq,
                &mut q,
                head,
                ChainError::AddressOutOfRange { addr: a, len },
            );
        }
        // An indirect table outside memory.
        let head = dq.add_raw_chain(&[Descriptor {
            addr: end - 16,
            len: 32,
            flags: VIRTQ_DESC_F_INDIRECT,
            next: 0,
        }]);
        expect_invalid(
            &mut dq,
            &mut q,
            head,
            ChainError::AddressOutOfRange {
                addr: end - 16,
                len: 32,
            },
        );
        // A next index past the table.
        let head = dq.add_raw_chain(&[Descriptor {
            addr: addr(0x8000).0,
            len: 1,
            flags: VIRTQ_DESC_F_NEXT,
            next: 8,
        }]);
        expect_invalid(
            &mut dq,
            &mut q,
            head,
            ChainError::NextOutOfRange {
                next: 8,
                table_len: 8,
            },
        );
    }

    #[test]
    fn head_out_of_range_is_skipped() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        dq.publish(8);
        dq.publish(0xffff);
        let good = dq.add_chain(&[Buf::r(addr(0x8000), 1)]);
        let c = q.pop().unwrap();
        assert_eq!(c.head(), good);
        assert_eq!(q.metrics().invalid_heads.get(), 2);
        assert_eq!(dq.pop_used(), None, "nothing to give back for a bad head");
        assert_eq!(q.add_used(8, 0), Err(QueueError::UsedHeadOutOfRange(8)));
    }

    #[test]
    fn length_overflow_rejected() {
        // Two 2 GiB buffers at the same place add up to 2^32 bytes. The
        // region is a lazily committed mapping, so this costs nothing.
        let mem = GuestMemory::new_owned((1 << 31) + (1 << 20), BASE).unwrap();
        let mut dq = DriverQueue::new(&mem, BASE, 8);
        let mut q = Queue::new(mem.clone(), &dq.config(8), 0).unwrap();
        let head = dq.add_chain(&[
            Buf::w(addr(1 << 20), 1 << 31),
            Buf::w(addr(1 << 20), 1 << 31),
        ]);
        expect_invalid(&mut dq, &mut q, head, ChainError::TooManyBytes);
        // Just under the limit is fine.
        dq.add_chain(&[
            Buf::w(addr(1 << 20), 1 << 31),
            Buf::w(addr(1 << 20), (1 << 31) - 1),
        ]);
        assert_eq!(q.pop().unwrap().writable_len(), u32::MAX);
    }

    #[test]
    fn bad_indirect_tables_rejected() {
        let (_mem, mut dq, mut q) = setup(8, ALL);
        let table = addr(0x7000);
        let ind = |addr: GuestAddress, len, flags| Descriptor {
            addr: addr.0,
            len,
            flags: VIRTQ_DESC_F_INDIRECT | flags,
            next: 1,
        };

        // Nested: an indirect table whose entry is itself indirect.
        dq.write_raw_table(table, &[ind(addr(0x6000), 16, 0)]);
        let head = dq.add_raw_chain(&[ind(table, 16, 0)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::NestedIndirect);

        let head = dq.add_raw_chain(&[ind(table, 16, VIRTQ_DESC_F_NEXT)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::IndirectWithNext);

        for len in [0, 8, 17] {
            let head = dq.add_raw_chain(&[ind(table, len, 0)]);
            expect_invalid(&mut dq, &mut q, head, ChainError::IndirectBadLength(len));
        }
        let head = dq.add_raw_chain(&[ind(table, 16 * 9, 0)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::IndirectTooLarge(9));

        // A loop inside the table ends too.
        dq.write_raw_table(
            table,
            &[
                Descriptor {
                    addr: addr(0x8000).0,
                    len: 1,
                    flags: VIRTQ_DESC_F_NEXT,
                    next: 1,
                },
                Descriptor {
                    addr: addr(0x8000).0,
                    len: 1,
                    flags: VIRTQ_DESC_F_NEXT,
                    next: 0,
                },
            ],
        );
        let head = dq.add_raw_chain(&[ind(table, 32, 0)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::TooLong);
    }

    #[test]
    fn indirect_needs_negotiation() {
        let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
        let head = dq.add_indirect(addr(0x7000), &[Buf::r(addr(0x8000), 1)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::IndirectNotNegotiated);
    }

    #[test]
    fn readable_after_writable_rejected() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        let head = dq.add_chain(&[Buf::w(addr(0x8000), 1), Buf::r(addr(0x9000), 1)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::ReadableAfterWritable);
    }

    #[test]
    fn avail_overrun_breaks_the_queue() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        dq.add_chain(&[Buf::r(addr(0x8000), 1)]);
        assert!(q.pop().is_some());
        dq.set_avail_idx(1 + 9);
        assert!(matches!(
            q.pop_chain(),
            Err(QueueError::AvailOverrun {
                avail_idx: 10,
                next_avail: 1
            })
        ));
        assert!(q.is_broken());
        assert_eq!(q.pop(), None);
        assert_eq!(q.pop_chain(), Err(QueueError::Broken));
        // The "re-check after enabling" step must not report work either,
        // or a device loop would spin on a ring it can never pop.
        assert_eq!(q.has_available(), Err(QueueError::Broken));
        assert_eq!(q.enable_notification(), Err(QueueError::Broken));
        assert_eq!(q.metrics().avail_overruns.get(), 1);
    }

    #[test]
    fn used_ring_wraps_and_batches() {
        let (_mem, mut dq, mut q) = setup(4, 0);
        for round in 0..5u32 {
            let heads: Vec<u16> = (0..3)
                .map(|_| dq.add_chain(&[Buf::w(addr(0x8000), 8)]))
                .collect();
            let chains: Vec<_> = (0..3).map(|_| q.pop().unwrap()).collect();
            assert_eq!(chains.iter().map(|c| c.head()).collect::<Vec<_>>(), heads);
            let elems: Vec<_> = chains.iter().map(|c| (c.head(), round)).collect();
            assert_eq!(
                q.add_used_batch(&[(0, 1), (4, 1)]),
                Err(QueueError::UsedHeadOutOfRange(4))
            );
            q.add_used_batch(&elems).unwrap();
            for h in &heads {
                assert_eq!(dq.pop_used(), Some((u32::from(*h), round)));
            }
        }
        assert_eq!(q.next_used(), 15);
        assert_eq!(dq.used_idx(), 15);
    }

    #[test]
    fn undo_pop_returns_the_chain() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        let head = dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        let c = q.pop().unwrap();
        q.undo_pop();
        assert_eq!(q.pop().unwrap(), c);
        assert_eq!(c.head(), head);
    }

    #[test]
    fn need_event_math() {
        // Driver wants an interrupt when the entry at used_event is used.
        assert!(vring_need_event(0, 1, 0));
        assert!(!vring_need_event(1, 1, 0));
        assert!(vring_need_event(1, 2, 0));
        assert!(vring_need_event(4, 5, 3));
        assert!(!vring_need_event(5, 5, 3), "event not reached yet");
        assert!(
            !vring_need_event(2, 5, 3),
            "event already passed before old"
        );
        assert!(!vring_need_event(7, 7, 7), "nothing new");
        // Wrap-around of the 16-bit indices.
        assert!(vring_need_event(0xffff, 1, 0xfffe));
        assert!(vring_need_event(0xfffe, 0, 0xfffe));
        assert!(!vring_need_event(0, 0, 0xfffe));
        assert!(vring_need_event(0, 1, 0xffff));
        // Exhaustive against a straightforward model on a small window.
        for old in [0u16, 1, 100, 0xfff0, 0xffff] {
            for n in 0..20u16 {
                let new = old.wrapping_add(n);
                for e in 0..40u16 {
                    let event = old.wrapping_sub(10).wrapping_add(e);
                    let model = (0..n).any(|k| old.wrapping_add(k) == event);
                    assert_eq!(
                        vring_need_event(event, new, old),
                        model,
                        "{event} {new} {old}"
                    );
                }
            }
        }
    }

    #[test]
    fn event_idx_suppression() {
        fn use_one(dq: &mut DriverQueue, q: &mut Queue) {
            dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
            let c = q.pop().unwrap();
            q.add_used(c.head(), 8).unwrap();
            dq.pop_used();
        }
        let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
        assert!(!q.needs_notification().unwrap(), "nothing used yet");
        use_one(&mut dq, &mut q);
        assert!(
            q.needs_notification().unwrap(),
            "used_event 0: the first completion notifies"
        );
        assert!(!q.needs_notification().unwrap(), "nothing new since");
        // Driver asks to be told only when used entry 3 is written.
        dq.set_used_event(3);
        use_one(&mut dq, &mut q); // used idx 2 (entry 1)
        assert!(!q.needs_notification().unwrap());
        use_one(&mut dq, &mut q); // used idx 3 (entry 2)
        assert!(!q.needs_notification().unwrap());
        use_one(&mut dq, &mut q); // used idx 4 (entry 3)
        assert!(q.needs_notification().unwrap());
        // A batch jumping over the event also notifies.
        dq.set_used_event(5);
        use_one(&mut dq, &mut q);
        use_one(&mut dq, &mut q);
        use_one(&mut dq, &mut q);
        assert!(q.needs_notification().unwrap());
        // The NO_INTERRUPT flag is ignored with EVENT_IDX (2.7.7.2).
        dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
        dq.set_used_event(q.next_used());
        use_one(&mut dq, &mut q);
        assert!(q.needs_notification().unwrap());
    }

    #[test]
    fn flag_suppression_without_event_idx() {
        let (_mem, mut dq, mut q) = setup(8, 0);
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        let c = q.pop().unwrap();
        q.add_used(c.head(), 0).unwrap();
        dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
        assert!(!q.needs_notification().unwrap());
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        let c = q.pop().unwrap();
        q.add_used(c.head(), 0).unwrap();
        dq.set_avail_flags(0);
        assert!(q.needs_notification().unwrap());

        // Device-side: NO_NOTIFY in the used ring.
        q.disable_notification().unwrap();
        assert_eq!(dq.used_flags(), VIRTQ_USED_F_NO_NOTIFY);
        assert!(!q.enable_notification().unwrap());
        assert_eq!(dq.used_flags(), 0);
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        assert!(
            q.enable_notification().unwrap(),
            "buffers arrived: caller must process"
        );
    }

    #[test]
    fn enable_notification_sets_avail_event() {
        let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
        assert!(!q.enable_notification().unwrap());
        assert_eq!(dq.avail_event(), 0);
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        assert!(q.enable_notification().unwrap());
        q.pop().unwrap();
        q.pop().unwrap();
        assert!(!q.enable_notification().unwrap());
        assert_eq!(
            dq.avail_event(),
            2,
            "driver must notify when it makes entry 2 available"
        );
        q.disable_notification().unwrap();
        assert_eq!(dq.used_flags(), 0, "flags stay 0 with EVENT_IDX");
    }

    /// Random descriptor tables, rings and indices: no panic, no access
    /// outside guest memory, every accepted chain inside memory and within
    /// the limits, every used entry a valid head.
    #[test]
    fn random_tables_never_escape() {
        const LEN: usize = 64 * 1024;
        let mut rng = XorShift::new(0x5eed_1234_abcd_0001);
        let guarded = GuardedMemory::new(LEN, BASE);
        let mem = guarded.mem().clone();
        let mut stats = [0usize; 2];
        for round in 0..2000 {
            let size = 1u16 << (rng.next() % 7); // 1..64
            let feats = rng.next() & ALL;
            mem.write(BASE, &vec![0; LEN]).unwrap();
            let mut dq = DriverQueue::new(&mem, BASE, size);
            // Descriptors: mostly plausible, sometimes wild.
            let pick_addr = |rng: &mut XorShift| match rng.next() % 8 {
                0 => rng.next(),
                1 => RAM_PHYS_BASE + LEN as u64 - rng.next() % 64,
                2 => RAM_PHYS_BASE - rng.next() % 64,
                3 => u64::MAX - rng.next() % 64,
                _ => RAM_PHYS_BASE + 0x4000 + rng.next() % (LEN as u64 - 0x4000),
            };
            let pick_len = |rng: &mut XorShift| match rng.next() % 6 {
                0 => rng.next() as u32,
                1 => 16 * (rng.next() % 80) as u32,
                _ => (rng.next() % 512) as u32,
            };
            let random_desc = |rng: &mut XorShift| Descriptor {
                addr: pick_addr(rng),
                len: pick_len(rng),
                flags: (rng.next() % 8) as u16,
                next: if rng.below(4) == 0 {
                    rng.next() as u16
                } else {
                    (rng.next() % u64::from(size)) as u16
                },
            };
            for i in 0..size {
                dq.write_desc(i, random_desc(&mut rng));
            }
            // Some indirect tables inside the data area.
            for _ in 0..4 {
                let at = RAM_PHYS_BASE + 0x4000 + 16 * (rng.next() % 0x800);
                let n = rng.next() % 8;
                for k in 0..n {
                    let d = random_desc(&mut rng);
                    let _ = mem.write(GuestAddress(at + 16 * k), &d.to_bytes());
                }
            }
            for slot in 0..size {
                let head = if rng.below(8) == 0 {
                    rng.next() as u16
                } else {
                    (rng.next() % u64::from(size)) as u16
                };
                dq.write_avail_slot(slot, head);
            }
            let avail = if rng.below(8) == 0 {
                rng.next() as u16
            } else {
                (rng.next() % (u64::from(size) + 1)) as u16
            };
            dq.set_avail_idx(avail);
            dq.set_used_event(rng.next() as u16);

            let mut q = Queue::new(mem.clone(), &dq.config(size), feats).unwrap();
            let mut steps = 0;
            while let Some(c) = q.pop() {
                steps += 1;
                assert!(
                    steps <= usize::from(size),
                    "round {round}: popped more than a ring"
                );
                let total = u64::from(c.readable_len()) + u64::from(c.writable_len());
                assert!(total < 1 << 32);
                for s in c.readable().iter().chain(c.writable()) {
                    assert!(mem.check_range(s.addr, u64::from(s.len)).is_ok());
                }
                assert!(c.readable().len() + c.writable().len() <= 2 * usize::from(size));
                // Exercise the stream accessors on what was accepted.
                let mut sink = Vec::new();
                c.reader(&mem).take(4096).read_to_end(&mut sink).unwrap();
                let mut w = c.writer(&mem);
                w.write_all(&vec![0xee; w.available().min(256)]).unwrap();
                let n = w.written() as u32;
                q.add_used(c.head(), n).unwrap();
                let _ = q.needs_notification();
                let _ = q.enable_notification();
                stats[0] += 1;
            }
            stats[1] += q.metrics().invalid_chains.get() as usize;
            // Every used entry names a valid head.
            for i in 0..q.next_used() {
                let (id, _) = dq.used_elem(i);
                assert!(id < u32::from(size));
            }
        }
        drop(mem);
        assert!(guarded.guards_intact(), "a write escaped guest memory");
        assert!(
            stats[0] > 100 && stats[1] > 100,
            "both outcomes exercised: {stats:?}"
        );
    }
}

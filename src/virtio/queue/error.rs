//! Why a chain or a queue was refused: every variant is the driver's fault
//! (or a device's misuse of the queue), said in words by `Display`.

use std::fmt;

use crate::virtio::mem::MemError;

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

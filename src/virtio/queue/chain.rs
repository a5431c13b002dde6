//! Descriptors and the chains they form: [`Queue::pop_chain`]'s walk
//! (`parse_chain`), which copies each descriptor out of guest memory once
//! and checks it before following it, into a [`DescriptorChain`] of
//! [`Segment`]s inside guest memory.

use super::error::ChainError;
use super::io::{Reader, Writer};
use super::Queue;
use crate::virtio::mem::{GuestAddress, GuestMemory, MemError};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of indirect descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Size of one descriptor in the table.
pub const DESCRIPTOR_SIZE: u64 = 16;

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
        Reader::new(mem, self.readable(), self.readable_len)
    }

    /// An `io::Write` over the writable segments.
    pub fn writer<'a>(&'a self, mem: &'a GuestMemory) -> Writer<'a> {
        Writer::new(mem, self.writable(), self.writable_len)
    }
}

impl Queue {
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
    pub(super) fn parse_chain(&self, head: u16) -> Result<DescriptorChain, ChainError> {
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

//! The queue registers' values as the driver programmed them, and their
//! validation against guest memory (virtio 1.2, 2.7 alignment and sizes).

use super::error::QueueError;
use super::{DESCRIPTOR_SIZE, MAX_QUEUE_SIZE, USED_ELEM_SIZE};
use crate::virtio::mem::{GuestAddress, GuestMemory};

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

//! The driver side, for tests: sets up split rings in a [`GuestMemory`] the
//! way Linux's `virtio_ring.c` does (descriptor table, available ring, then
//! the used ring on the next 4 KiB boundary, as `vring_init` with
//! `VIRTIO_MMIO_VRING_ALIGN`), adds chains, reads the used ring, and drives
//! an [`MmioTransport`] through its registers.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::mem::{GuestAddress, GuestMemory};
use super::mmio::{regs, MmioTransport};
use super::queue::{
    Descriptor, QueueConfig, DESCRIPTOR_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
};
use super::status;

/// A small, fast, deterministic PRNG (xorshift64*).
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`; slightly biased, fine for tests).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One buffer of a chain the test driver builds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buf {
    pub addr: GuestAddress,
    pub len: u32,
    pub write: bool,
}

impl Buf {
    /// Device-readable.
    pub(crate) fn r(addr: GuestAddress, len: u32) -> Self {
        Buf {
            addr,
            len,
            write: false,
        }
    }

    /// Device-writable.
    pub(crate) fn w(addr: GuestAddress, len: u32) -> Self {
        Buf {
            addr,
            len,
            write: true,
        }
    }

    fn desc(&self) -> Descriptor {
        Descriptor {
            addr: self.addr.0,
            len: self.len,
            flags: if self.write { VIRTQ_DESC_F_WRITE } else { 0 },
            next: 0,
        }
    }
}

/// The driver's view of one split queue.
pub(crate) struct DriverQueue {
    pub mem: GuestMemory,
    pub size: u16,
    pub desc: GuestAddress,
    pub avail: GuestAddress,
    pub used: GuestAddress,
    next_desc: u16,
    avail_idx: u16,
    last_used: u16,
}

fn at(a: GuestAddress, off: u64) -> GuestAddress {
    GuestAddress(a.0 + off)
}

impl DriverQueue {
    /// Bytes a queue of `size` occupies from its base (used ring included).
    pub(crate) fn footprint(size: u16) -> u64 {
        let s = u64::from(size);
        let used = (16 * s + 6 + 2 * s).next_multiple_of(4096);
        used + 6 + 8 * s
    }

    /// Lays out a zeroed queue at `base`.
    pub(crate) fn new(mem: &GuestMemory, base: GuestAddress, size: u16) -> Self {
        let s = u64::from(size);
        let desc = base;
        let avail = at(base, 16 * s);
        let used = at(base, (16 * s + 6 + 2 * s).next_multiple_of(4096));
        mem.write(base, &vec![0; Self::footprint(size) as usize])
            .unwrap();
        DriverQueue {
            mem: mem.clone(),
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// The register values a driver would program, with `QueueReady` set.
    pub(crate) fn config(&self, max_size: u16) -> QueueConfig {
        QueueConfig {
            max_size,
            size: self.size,
            ready: true,
            desc_table: self.desc,
            avail_ring: self.avail,
            used_ring: self.used,
        }
    }

    pub(crate) fn write_desc(&self, index: u16, d: Descriptor) {
        self.mem
            .write(
                at(self.desc, DESCRIPTOR_SIZE * u64::from(index)),
                &d.to_bytes(),
            )
            .unwrap();
    }

    fn alloc_desc(&mut self) -> u16 {
        let i = self.next_desc;
        self.next_desc = (self.next_desc + 1) % self.size;
        i
    }

    /// Writes `descs` into consecutive free descriptors, linking all but the
    /// last with NEXT (the last keeps its own flags and `next`), and makes
    /// the chain available. Returns the head.
    pub(crate) fn add_raw_chain(&mut self, descs: &[Descriptor]) -> u16 {
        let idx: Vec<u16> = descs.iter().map(|_| self.alloc_desc()).collect();
        for (k, d) in descs.iter().enumerate() {
            let mut d = *d;
            if k + 1 < descs.len() {
                d.flags |= VIRTQ_DESC_F_NEXT;
                d.next = idx[k + 1];
            }
            self.write_desc(idx[k], d);
        }
        self.publish(idx[0]);
        idx[0]
    }

    /// Adds and publishes a chain of buffers.
    pub(crate) fn add_chain(&mut self, bufs: &[Buf]) -> u16 {
        let descs: Vec<_> = bufs.iter().map(Buf::desc).collect();
        self.add_raw_chain(&descs)
    }

    /// Writes an indirect table of `descs` at `table`, linking entries in
    /// order as Linux's `alloc_indirect_split` does.
    pub(crate) fn write_raw_table(&self, table: GuestAddress, descs: &[Descriptor]) {
        for (k, d) in descs.iter().enumerate() {
            self.mem
                .write(at(table, DESCRIPTOR_SIZE * k as u64), &d.to_bytes())
                .unwrap();
        }
    }

    pub(crate) fn write_table(&self, table: GuestAddress, bufs: &[Buf]) {
        let n = bufs.len();
        let descs: Vec<_> = bufs
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let mut d = b.desc();
                if k + 1 < n {
                    d.flags |= VIRTQ_DESC_F_NEXT;
                    d.next = k as u16 + 1;
                }
                d
            })
            .collect();
        self.write_raw_table(table, &descs);
    }

    /// Adds and publishes one indirect descriptor pointing at a table of
    /// `bufs` written at `table`.
    pub(crate) fn add_indirect(&mut self, table: GuestAddress, bufs: &[Buf]) -> u16 {
        self.write_table(table, bufs);
        self.add_raw_chain(&[Descriptor {
            addr: table.0,
            len: (DESCRIPTOR_SIZE as usize * bufs.len()) as u32,
            flags: VIRTQ_DESC_F_INDIRECT,
            next: 0,
        }])
    }

    pub(crate) fn write_avail_slot(&self, slot: u16, head: u16) {
        self.mem
            .write_u16(at(self.avail, 4 + 2 * u64::from(slot % self.size)), head)
            .unwrap();
    }

    /// Puts `head` in the next available slot and bumps the index (with a
    /// release store, as `virtio_store_mb` does).
    pub(crate) fn publish(&mut self, head: u16) {
        self.write_avail_slot(self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .store_u16(at(self.avail, 2), self.avail_idx, Ordering::Release)
            .unwrap();
    }

    pub(crate) fn set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
        self.mem
            .store_u16(at(self.avail, 2), idx, Ordering::Release)
            .unwrap();
    }

    pub(crate) fn set_avail_flags(&self, flags: u16) {
        self.mem.write_u16(self.avail, flags).unwrap();
    }

    pub(crate) fn set_used_event(&self, v: u16) {
        self.mem
            .write_u16(at(self.avail, 4 + 2 * u64::from(self.size)), v)
            .unwrap();
    }

    pub(crate) fn avail_event(&self) -> u16 {
        self.mem
            .read_u16(at(self.used, 4 + 8 * u64::from(self.size)))
            .unwrap()
    }

    pub(crate) fn used_flags(&self) -> u16 {
        self.mem.read_u16(self.used).unwrap()
    }

    pub(crate) fn used_idx(&self) -> u16 {
        self.mem
            .load_u16(at(self.used, 2), Ordering::Acquire)
            .unwrap()
    }

    /// The used element written for used index `i`.
    pub(crate) fn used_elem(&self, i: u16) -> (u32, u32) {
        let e = at(self.used, 4 + 8 * u64::from(i % self.size));
        (
            self.mem.read_u32(e).unwrap(),
            self.mem.read_u32(at(e, 4)).unwrap(),
        )
    }

    /// The next used element not seen yet, as `(id, len)`.
    pub(crate) fn pop_used(&mut self) -> Option<(u32, u32)> {
        if self.used_idx() == self.last_used {
            return None;
        }
        let e = self.used_elem(self.last_used);
        self.last_used = self.last_used.wrapping_add(1);
        Some(e)
    }
}

/// Register access the way the Linux driver does it.
pub(crate) fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes()).unwrap();
}

pub(crate) fn read32(t: &MmioTransport, offset: u64) -> u32 {
    let mut b = [0; 4];
    t.read(offset, &mut b).unwrap();
    u32::from_le_bytes(b)
}

/// Programs queue `index` from `dq` and sets it ready, as `vm_setup_vq`.
pub(crate) fn setup_queue(t: &mut MmioTransport, index: u32, dq: &DriverQueue) {
    write32(t, regs::QUEUE_SEL, index);
    assert_eq!(read32(t, regs::QUEUE_READY), 0);
    assert!(read32(t, regs::QUEUE_NUM_MAX) >= u32::from(dq.size));
    write32(t, regs::QUEUE_NUM, u32::from(dq.size));
    for (lo, a) in [
        (regs::QUEUE_DESC_LOW, dq.desc),
        (regs::QUEUE_DRIVER_LOW, dq.avail),
        (regs::QUEUE_DEVICE_LOW, dq.used),
    ] {
        write32(t, lo, a.0 as u32);
        write32(t, lo + 4, (a.0 >> 32) as u32);
    }
    write32(t, regs::QUEUE_READY, 1);
}

/// Reads the device features, as `vm_get_features`.
pub(crate) fn device_features(t: &mut MmioTransport) -> u64 {
    write32(t, regs::DEVICE_FEATURES_SEL, 1);
    let hi = u64::from(read32(t, regs::DEVICE_FEATURES));
    write32(t, regs::DEVICE_FEATURES_SEL, 0);
    (hi << 32) | u64::from(read32(t, regs::DEVICE_FEATURES))
}

/// Writes the driver features, as `vm_finalize_features`.
pub(crate) fn set_driver_features(t: &mut MmioTransport, f: u64) {
    write32(t, regs::DRIVER_FEATURES_SEL, 1);
    write32(t, regs::DRIVER_FEATURES, (f >> 32) as u32);
    write32(t, regs::DRIVER_FEATURES_SEL, 0);
    write32(t, regs::DRIVER_FEATURES, f as u32);
}

/// Adds status bits the way `virtio_add_status` does (read, or, write).
pub(crate) fn add_status(t: &mut MmioTransport, bits: u32) {
    let s = read32(t, regs::STATUS);
    write32(t, regs::STATUS, s | bits);
}

/// Waits up to 10 s for `f` to hold (a worker thread's doing), failing the
/// test with `what` otherwise.
pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The driver's side of feature negotiation (3.1.1 steps 1 to 5): status
/// ACKNOWLEDGE, DRIVER, the driver's features `f`, then FEATURES_OK (which
/// the device may refuse: read `Status` back to see).
pub(crate) fn negotiate(t: &mut MmioTransport, f: u64) {
    add_status(t, status::ACKNOWLEDGE);
    add_status(t, status::DRIVER);
    set_driver_features(t, f);
    add_status(t, status::FEATURES_OK);
}

//! The transport driven register by register, as a driver (or a broken
//! one) would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::virtio::device::{ActivateError, INT_CONFIG, INT_USED_RING};
use crate::virtio::mem::RAM_PHYS_BASE;
use crate::virtio::test_utils::{
    add_status, device_features, negotiate, read32, set_driver_features, setup_queue, write32,
    DriverQueue,
};

const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);
const DUMMY_FEATURE: u64 = 1 << 3;

/// What the dummy device saw, shared with the test.
#[derive(Default)]
struct Log {
    activations: AtomicUsize,
    resets: AtomicUsize,
    notifies: Mutex<Vec<u32>>,
    acked: Mutex<u64>,
    config: Mutex<Vec<u8>>,
    fail_activate: std::sync::atomic::AtomicBool,
    refuse_features: std::sync::atomic::AtomicBool,
}

struct Dummy {
    log: Arc<Log>,
    active: bool,
    config: [u8; 8],
    sizes: Vec<u16>,
}

impl VirtioDevice for Dummy {
    fn device_type(&self) -> u32 {
        42
    }
    fn avail_features(&self) -> u64 {
        DUMMY_FEATURE
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }
    fn config_len(&self) -> usize {
        self.config.len()
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| self.config.get(o + i))
                .copied()
                .unwrap_or(0);
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let mut log = self.log.config.lock().unwrap();
        log.push(offset as u8);
        log.extend_from_slice(data);
    }
    fn check_features(&self, acked: u64) -> bool {
        *self.log.acked.lock().unwrap() = acked;
        !self.log.refuse_features.load(Ordering::SeqCst)
    }
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        assert_eq!(ctx.queues.len(), self.sizes.len());
        if self.log.fail_activate.load(Ordering::SeqCst) {
            return Err(ActivateError::BackendUnavailable);
        }
        self.log.activations.fetch_add(1, Ordering::SeqCst);
        self.active = true;
        Ok(())
    }
    fn reset(&mut self) {
        self.log.resets.fetch_add(1, Ordering::SeqCst);
        self.active = false;
    }
    fn is_activated(&self) -> bool {
        self.active
    }
    fn queue_notify(&self, index: u32) {
        self.log.notifies.lock().unwrap().push(index);
    }
}

struct Fixture {
    t: MmioTransport,
    log: Arc<Log>,
    irqs: Arc<AtomicUsize>,
    mem: GuestMemory,
}

fn fixture() -> Fixture {
    let mem = GuestMemory::new_owned(1 << 20, BASE).unwrap();
    let log = Arc::new(Log::default());
    let irqs = Arc::new(AtomicUsize::new(0));
    let i2 = irqs.clone();
    let dev = Dummy {
        log: log.clone(),
        active: false,
        config: *b"ABCDEFGH",
        sizes: vec![16, 8],
    };
    let t = MmioTransport::new(
        mem.clone(),
        Box::new(dev),
        Arc::new(move || {
            i2.fetch_add(1, Ordering::SeqCst);
        }),
    );
    Fixture { t, log, irqs, mem }
}

/// The whole Linux probe sequence, up to DRIVER_OK.
fn bring_up(f: &mut Fixture) {
    let t = &mut f.t;
    write32(t, regs::STATUS, 0);
    add_status(t, status::ACKNOWLEDGE);
    add_status(t, status::DRIVER);
    let offered = device_features(t);
    set_driver_features(t, offered);
    add_status(t, status::FEATURES_OK);
    assert_ne!(read32(t, regs::STATUS) & status::FEATURES_OK, 0);
    let q0 = DriverQueue::new(&f.mem, BASE, 16);
    let q1 = DriverQueue::new(&f.mem, GuestAddress(RAM_PHYS_BASE + 0x10000), 8);
    setup_queue(t, 0, &q0);
    setup_queue(t, 1, &q1);
    add_status(t, status::DRIVER_OK);
}

#[test]
fn identification_registers() {
    let f = fixture();
    assert_eq!(read32(&f.t, regs::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(read32(&f.t, regs::VERSION), 2);
    assert_eq!(read32(&f.t, regs::DEVICE_ID), 42);
    assert_eq!(read32(&f.t, regs::VENDOR_ID), VENDOR_ID);
    assert_eq!(read32(&f.t, regs::SHM_LEN_LOW), u32::MAX);
    assert_eq!(f.t.mmio_len(), 0x108);
    assert_eq!(
        f.t.cmdline_arg(0x7f00_1234_5000, 5),
        "virtio_mmio.device=264@0x7f0012345000:5"
    );
}

#[test]
fn feature_negotiation() {
    let mut f = fixture();
    let t = &mut f.t;
    let offered = device_features(t);
    assert_eq!(offered, DUMMY_FEATURE | features::TRANSPORT);
    write32(t, regs::DEVICE_FEATURES_SEL, 2);
    assert_eq!(read32(t, regs::DEVICE_FEATURES), 0);

    // Before DRIVER, feature writes are ignored.
    set_driver_features(t, offered);
    assert_eq!(t.acked_features(), 0);
    add_status(t, status::ACKNOWLEDGE);
    add_status(t, status::DRIVER);
    // Unoffered bits are dropped and counted.
    set_driver_features(t, offered | (1 << 7) | (1 << 40));
    assert_eq!(t.acked_features(), offered);
    assert_eq!(t.metrics().unoffered_features.get(), 2);
    // A page beyond 1 is ignored.
    write32(t, regs::DRIVER_FEATURES_SEL, 2);
    write32(t, regs::DRIVER_FEATURES, u32::MAX);
    assert_eq!(t.acked_features(), offered);
    add_status(t, status::FEATURES_OK);
    assert_eq!(
        read32(t, regs::STATUS),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK
    );
    assert_eq!(*f.log.acked.lock().unwrap(), offered);
    // After FEATURES_OK, features are frozen.
    set_driver_features(t, 0);
    assert_eq!(t.acked_features(), offered);
}

#[test]
fn version_1_is_required() {
    let mut f = fixture();
    let t = &mut f.t;
    negotiate(t, DUMMY_FEATURE | features::RING_EVENT_IDX);
    assert_eq!(
        read32(t, regs::STATUS) & status::FEATURES_OK,
        0,
        "device refuses"
    );
    assert_eq!(t.metrics().features_refused.get(), 1);
    // The driver may try again with VERSION_1.
    set_driver_features(t, features::VERSION_1);
    add_status(t, status::FEATURES_OK);
    assert_ne!(read32(t, regs::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn device_can_refuse_features() {
    let mut f = fixture();
    f.log.refuse_features.store(true, Ordering::SeqCst);
    let t = &mut f.t;
    negotiate(t, features::VERSION_1);
    assert_eq!(read32(t, regs::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn full_bring_up_activates_and_notifies() {
    let mut f = fixture();
    bring_up(&mut f);
    let t = &mut f.t;
    assert_eq!(
        read32(t, regs::STATUS),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    assert_eq!(f.log.activations.load(Ordering::SeqCst), 1);
    assert!(t.device().is_activated());
    write32(t, regs::QUEUE_NOTIFY, 1);
    write32(t, regs::QUEUE_NOTIFY, 0);
    write32(t, regs::QUEUE_NOTIFY, 2); // no such queue
    assert_eq!(*f.log.notifies.lock().unwrap(), vec![1, 0]);
    assert_eq!(t.metrics().spurious_notifies.get(), 1);
    // Queue registers are frozen now.
    write32(t, regs::QUEUE_SEL, 0);
    write32(t, regs::QUEUE_NUM, 4);
    assert_eq!(t.queues[0].size, 16);
    // Interrupt status and acknowledgement.
    t.interrupt().signal_used_queue();
    assert_eq!(f.irqs.load(Ordering::SeqCst), 1);
    assert_eq!(read32(t, regs::INTERRUPT_STATUS), INT_USED_RING);
    write32(t, regs::INTERRUPT_ACK, INT_USED_RING);
    assert_eq!(read32(t, regs::INTERRUPT_STATUS), 0);
    // Reset stops the device and clears everything.
    t.interrupt().signal_used_queue();
    write32(t, regs::STATUS, 0);
    assert_eq!(f.log.resets.load(Ordering::SeqCst), 1);
    assert!(!t.device().is_activated());
    assert_eq!(read32(t, regs::STATUS), 0);
    assert_eq!(read32(t, regs::INTERRUPT_STATUS), 0);
    write32(t, regs::QUEUE_SEL, 0);
    assert_eq!(read32(t, regs::QUEUE_READY), 0);
    assert_eq!(t.acked_features(), 0);
    write32(t, regs::QUEUE_NOTIFY, 0);
    assert_eq!(t.metrics().spurious_notifies.get(), 2, "inactive device");
    // And it comes up again.
    bring_up(&mut f);
    assert_eq!(f.log.activations.load(Ordering::SeqCst), 2);
}

#[test]
fn illegal_status_transitions() {
    let mut f = fixture();
    let t = &mut f.t;
    let illegal = |t: &mut MmioTransport, v: u32| {
        let before = read32(t, regs::STATUS);
        let n = t.metrics().illegal_status_writes.get();
        write32(t, regs::STATUS, v);
        assert_eq!(
            read32(t, regs::STATUS),
            before,
            "write {v:#x} must be ignored"
        );
        assert_eq!(t.metrics().illegal_status_writes.get(), n + 1);
    };
    // Skipping steps.
    illegal(t, status::DRIVER);
    illegal(t, status::FEATURES_OK);
    illegal(t, status::DRIVER_OK);
    illegal(t, status::ACKNOWLEDGE | status::DRIVER);
    illegal(t, 0x10); // undefined bit
    add_status(t, status::ACKNOWLEDGE);
    illegal(t, status::ACKNOWLEDGE | status::FEATURES_OK);
    illegal(t, status::ACKNOWLEDGE | status::DRIVER_OK);
    add_status(t, status::DRIVER);
    illegal(t, status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK);
    // Clearing bits without a reset.
    illegal(t, status::ACKNOWLEDGE);
    illegal(t, status::DRIVER);
    // The device's own bit.
    illegal(
        t,
        status::ACKNOWLEDGE | status::DRIVER | status::DEVICE_NEEDS_RESET,
    );
    // Rewriting the same value is harmless.
    write32(t, regs::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    assert_eq!(
        read32(t, regs::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
    // FAILED may be set at any time; the device is then not activated.
    add_status(t, status::FAILED);
    assert_ne!(read32(t, regs::STATUS) & status::FAILED, 0);
    set_driver_features(t, features::VERSION_1);
    assert_eq!(t.acked_features(), 0, "no negotiation after FAILED");
    assert_eq!(f.log.activations.load(Ordering::SeqCst), 0);
    write32(t, regs::STATUS, 0);
    assert_eq!(read32(t, regs::STATUS), 0);
}

#[test]
fn failed_after_driver_ok_keeps_running_until_reset() {
    let mut f = fixture();
    bring_up(&mut f);
    add_status(&mut f.t, status::FAILED);
    assert!(f.t.device().is_activated());
    write32(&mut f.t, regs::STATUS, 0);
    assert!(!f.t.device().is_activated());
}

#[test]
fn queue_setup_validation() {
    let mut f = fixture();
    let t = &mut f.t;
    // Queue registers before FEATURES_OK are ignored.
    write32(t, regs::QUEUE_SEL, 0);
    write32(t, regs::QUEUE_NUM, 4);
    assert_eq!(t.queues[0].size, 16);
    assert_eq!(read32(t, regs::QUEUE_NUM_MAX), 16);
    write32(t, regs::QUEUE_SEL, 1);
    assert_eq!(read32(t, regs::QUEUE_NUM_MAX), 8);
    write32(t, regs::QUEUE_SEL, 7);
    assert_eq!(read32(t, regs::QUEUE_NUM_MAX), 0, "no such queue");
    write32(t, regs::QUEUE_READY, 1);
    assert_eq!(read32(t, regs::QUEUE_READY), 0);

    negotiate(t, features::VERSION_1);
    let q0 = DriverQueue::new(&f.mem, BASE, 16);
    setup_queue(t, 0, &q0);
    // Writes to a ready queue's registers are ignored (4.2.2.2).
    write32(t, regs::QUEUE_SEL, 0);
    write32(t, regs::QUEUE_DESC_LOW, 0x1234);
    assert_eq!(t.queues[0].desc_table, q0.desc);
    // Queue 1: size 12 is not a power of two; activation must fail.
    let q1 = DriverQueue::new(&f.mem, GuestAddress(RAM_PHYS_BASE + 0x10000), 8);
    setup_queue(t, 1, &q1);
    write32(t, regs::QUEUE_READY, 0);
    write32(t, regs::QUEUE_NUM, 12);
    write32(t, regs::QUEUE_READY, 1);
    add_status(t, status::DRIVER_OK);
    assert!(!t.device().is_activated());
    assert_eq!(t.metrics().activate_fails.get(), 1);
    assert!(t
        .last_activate_error()
        .unwrap()
        .contains("invalid queue size 12"));
    assert_ne!(read32(t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(read32(t, regs::INTERRUPT_STATUS), INT_CONFIG);
    assert_eq!(read32(t, regs::CONFIG_GENERATION), 1);
    assert_eq!(f.irqs.load(Ordering::SeqCst), 1);
    // Reset clears DEVICE_NEEDS_RESET.
    write32(t, regs::STATUS, 0);
    assert_eq!(read32(t, regs::STATUS), 0);
}

#[test]
fn unready_queue_fails_activation() {
    let mut f = fixture();
    let t = &mut f.t;
    negotiate(t, features::VERSION_1);
    setup_queue(t, 0, &DriverQueue::new(&f.mem, BASE, 16));
    // Queue 1 left unconfigured, and a queue outside guest memory would
    // fail the same way.
    add_status(t, status::DRIVER_OK);
    assert!(!t.device().is_activated());
    assert!(t.last_activate_error().unwrap().contains("not ready"));
}

#[test]
fn device_activation_failure_needs_reset() {
    let mut f = fixture();
    f.log.fail_activate.store(true, Ordering::SeqCst);
    bring_up(&mut f);
    assert!(!f.t.device().is_activated());
    assert_ne!(read32(&f.t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn stopping_a_queue_stops_the_device() {
    let mut f = fixture();
    bring_up(&mut f);
    let t = &mut f.t;
    write32(t, regs::QUEUE_SEL, 1);
    write32(t, regs::QUEUE_READY, 0);
    assert_eq!(read32(t, regs::QUEUE_READY), 0);
    assert!(!t.device().is_activated());
    assert_eq!(f.log.resets.load(Ordering::SeqCst), 1);
    assert_ne!(read32(t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn queue_addresses_take_both_halves() {
    let mut f = fixture();
    let t = &mut f.t;
    negotiate(t, features::VERSION_1);
    write32(t, regs::QUEUE_SEL, 1);
    write32(t, regs::QUEUE_DEVICE_HIGH, 0x1234_5678);
    write32(t, regs::QUEUE_DEVICE_LOW, 0x9abc_def0);
    write32(t, regs::QUEUE_DRIVER_LOW, 0x10);
    write32(t, regs::QUEUE_DESC_HIGH, 1);
    assert_eq!(t.queues[1].used_ring, GuestAddress(0x1234_5678_9abc_def0));
    assert_eq!(t.queues[1].avail_ring, GuestAddress(0x10));
    assert_eq!(t.queues[1].desc_table, GuestAddress(1 << 32));
    write32(t, regs::QUEUE_NUM, 0x1_0000); // does not fit a u16: invalid
    assert_eq!(t.queues[1].size, 0);
    write32(t, regs::QUEUE_SEL, 9);
    write32(t, regs::QUEUE_NUM, 4); // no such queue: ignored
}

#[test]
fn bad_accesses_are_refused() {
    let mut f = fixture();
    let t = &mut f.t;
    let mut b2 = [0xffu8; 2];
    assert_eq!(
        t.read(regs::MAGIC_VALUE, &mut b2),
        Err(MmioError::BadAccess { offset: 0, len: 2 })
    );
    assert_eq!(b2, [0, 0], "zeroed on error");
    let mut b3 = [0u8; 3];
    assert!(t.read(regs::CONFIG, &mut b3).is_err());
    let mut b8 = [0u8; 8];
    assert!(t.read(regs::MAGIC_VALUE, &mut b8).is_err());
    let mut b4 = [0u8; 4];
    assert_eq!(
        t.read(0x002, &mut b4),
        Err(MmioError::BadAccess { offset: 2, len: 4 })
    );
    assert_eq!(
        t.read(0x028, &mut b4),
        Err(MmioError::UnknownRegister(0x28)),
        "legacy GuestPageSize"
    );
    assert_eq!(
        t.read(regs::QUEUE_NOTIFY, &mut b4),
        Err(MmioError::WriteOnly(0x50))
    );
    assert_eq!(
        t.write(regs::MAGIC_VALUE, &[0; 4]),
        Err(MmioError::ReadOnly(0))
    );
    assert_eq!(
        t.write(regs::INTERRUPT_STATUS, &[0; 4]),
        Err(MmioError::ReadOnly(0x60))
    );
    assert_eq!(
        t.write(0x0f0, &[0; 4]),
        Err(MmioError::UnknownRegister(0xf0))
    );
    assert_eq!(
        t.write(regs::STATUS, &[1]),
        Err(MmioError::BadAccess {
            offset: 0x70,
            len: 1
        })
    );
    assert_eq!(
        t.write(regs::STATUS, &[]),
        Err(MmioError::BadAccess {
            offset: 0x70,
            len: 0
        })
    );
    assert_eq!(
        t.write(0x071, &[1, 0, 0, 0]),
        Err(MmioError::BadAccess {
            offset: 0x71,
            len: 4
        })
    );
    assert_eq!(read32(t, regs::STATUS), 0);
    assert_eq!(t.metrics().bad_accesses.get(), 12);
}

#[test]
fn config_space_any_width() {
    let mut f = fixture();
    let t = &mut f.t;
    let mut b = [0u8; 1];
    t.read(regs::CONFIG + 2, &mut b).unwrap();
    assert_eq!(b, *b"C");
    let mut b = [0u8; 2];
    t.read(regs::CONFIG + 6, &mut b).unwrap();
    assert_eq!(b, *b"GH");
    let mut b = [0u8; 4];
    t.read(regs::CONFIG + 6, &mut b).unwrap();
    assert_eq!(b, *b"GH\0\0", "past the end reads as zero");
    let mut b = [0u8; 8];
    t.read(regs::CONFIG, &mut b).unwrap();
    assert_eq!(b, *b"ABCDEFGH");
    t.read(u64::MAX, &mut b).unwrap();
    assert_eq!(b, [0; 8]);
    t.write(regs::CONFIG + 1, &[9, 8]).unwrap();
    assert_eq!(*f.log.config.lock().unwrap(), vec![1, 9, 8]);
}

#[test]
fn memory_provider_is_asked_at_activation() {
    let mem = GuestMemory::new_owned(1 << 20, BASE).unwrap();
    let slot: Arc<Mutex<Option<GuestMemory>>> = Arc::default();
    let s2 = slot.clone();
    let log = Arc::new(Log::default());
    let dev = Dummy {
        log: log.clone(),
        active: false,
        config: [0; 8],
        sizes: vec![16, 8],
    };
    let t = MmioTransport::with_memory_provider(
        Arc::new(move || s2.lock().unwrap().clone()),
        Box::new(dev),
        Arc::new(|| {}),
    );
    let mut f = Fixture {
        t,
        log,
        irqs: Arc::default(),
        mem: mem.clone(),
    };
    // No RAM yet: activation fails cleanly.
    bring_up(&mut f);
    assert!(!f.t.device().is_activated());
    assert_eq!(
        f.t.last_activate_error(),
        Some("guest memory not available")
    );
    // Once the host knows the RAM, the next bring-up works.
    *slot.lock().unwrap() = Some(mem);
    bring_up(&mut f);
    assert!(f.t.device().is_activated());
}

#[test]
fn transport_can_be_shared_with_the_iomem_dispatch() {
    // The host's dispatch table holds devices as `Send + Sync`.
    fn shareable<T: Send + Sync>() {}
    shareable::<Mutex<MmioTransport>>();
    shareable::<Arc<Interrupt>>();
    shareable::<GuestMemory>();
}

#[test]
fn random_register_traffic_never_panics() {
    let mut f = fixture();
    let mut rng = crate::virtio::test_utils::XorShift::new(99);
    let offsets = [
        regs::DEVICE_FEATURES_SEL,
        regs::DRIVER_FEATURES,
        regs::DRIVER_FEATURES_SEL,
        regs::QUEUE_SEL,
        regs::QUEUE_NUM,
        regs::QUEUE_READY,
        regs::QUEUE_NOTIFY,
        regs::INTERRUPT_ACK,
        regs::STATUS,
        regs::QUEUE_DESC_LOW,
        regs::QUEUE_DESC_HIGH,
        regs::QUEUE_DRIVER_LOW,
        regs::QUEUE_DEVICE_LOW,
        regs::CONFIG,
    ];
    for _ in 0..20000 {
        let off = if rng.below(8) == 0 {
            rng.next() % 0x140
        } else {
            offsets[(rng.next() % offsets.len() as u64) as usize]
        };
        let v = match rng.next() % 4 {
            0 => rng.next() as u32,
            _ => (rng.next() % 16) as u32,
        };
        let len = [1usize, 2, 4, 4, 4, 8][(rng.next() % 6) as usize];
        if rng.below(2) == 0 {
            let _ = f.t.write(off, &v.to_le_bytes().repeat(2)[..len]);
        } else {
            let mut b = vec![0; len];
            let _ = f.t.read(off, &mut b);
        }
        // Invariant: the device runs only with DRIVER_OK set.
        if f.t.device().is_activated() {
            assert_ne!(f.t.status & status::DRIVER_OK, 0);
        }
    }
}

//! The virtio-mmio transport, version 2 (virtio 1.2, 4.2 "Virtio Over
//! MMIO").
//!
//! [`MmioTransport`] is the register file the kernel's `virtio_mmio` driver
//! reads and writes. It negotiates features (`VIRTIO_F_VERSION_1` is
//! required; the ring features of [`features::TRANSPORT`] are offered on
//! every device's behalf), runs the status state machine, collects queue
//! configuration, validates it when the driver sets `DRIVER_OK`, and hands
//! the queues to the device.
//!
//! What this layer guarantees:
//! - any sequence of register accesses, however illegal, leaves the
//!   transport in a defined state: illegal status transitions, writes to
//!   read-only registers, bad widths and the like are ignored and counted
//!   in [`MmioMetrics`] (and reported as an [`MmioError`] where the driver
//!   broke the access rules), never a panic;
//! - the device only runs with queues that passed validation; a driver that
//!   stops a queue of a running device (4.2.2.1: "The device MUST NOT access
//!   virtual queue contents when QueueReady is zero") stops the device;
//! - nothing here blocks, except a device reset, which waits for the
//!   device's worker to stop (see the [module docs](super)).
//!
//! **Wiring.** The host reserves `mmio_len()` bytes of address space at some
//! host address `base` (any allocation nobody touches), declares the device
//! to the kernel ([`cmdline_arg`](MmioTransport::cmdline_arg) before boot,
//! or the `virtio_mmio_device_add` call after), and its `iomem_access`
//! operation turns an access at `addr` with `base <= addr < base +
//! mmio_len()` into `read(addr - base, ..)` or `write(addr - base, ..)`
//! (holding the transport in a `Mutex`: accesses are serialised by the CPU
//! lock anyway, so it is never contended), returning `-EINVAL` on `Err`. The
//! IRQ callback calls `lkl_trigger_irq(irq)`; it must not take a lock held
//! around `read`/`write`, since a reset waits for the worker, which may be
//! raising an interrupt. A device declared on the command line is probed
//! during boot, before the host has the kernel's RAM in hand: build its
//! transport with [`MmioTransport::with_memory_provider`], which looks the
//! memory up when the driver activates the device. At halt, call
//! [`shutdown`](MmioTransport::shutdown) (or drop the transport) before the
//! kernel's RAM is unmapped.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::device::{ActivateContext, Interrupt, IrqCallback, VirtioDevice};
use super::features;
use super::mem::{GuestAddress, GuestMemory};
use super::metrics::Counter;
use super::queue::{Queue, QueueConfig, QueueError};
use super::status;

/// Register offsets (virtio 1.2, 4.2.2, table "MMIO Device Register
/// Layout").
pub mod regs {
    /// R: `0x74726976`.
    pub const MAGIC_VALUE: u64 = 0x000;
    /// R: 2.
    pub const VERSION: u64 = 0x004;
    /// R: device type.
    pub const DEVICE_ID: u64 = 0x008;
    /// R: vendor.
    pub const VENDOR_ID: u64 = 0x00c;
    /// R: 32 feature bits selected by `DEVICE_FEATURES_SEL`.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// W.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// W: 32 feature bits selected by `DRIVER_FEATURES_SEL`.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// W.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// W: selects the queue the queue registers apply to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// R.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// W.
    pub const QUEUE_NUM: u64 = 0x038;
    /// RW.
    pub const QUEUE_READY: u64 = 0x044;
    /// W: queue index.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// R.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// W.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// RW.
    pub const STATUS: u64 = 0x070;
    /// W.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// W.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// W: the available ring.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// W.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// W: the used ring.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// W.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// W: shared memory region select.
    pub const SHM_SEL: u64 = 0x0ac;
    /// R.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// R.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// R.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// R.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// RW (only with `VIRTIO_F_RING_RESET`, which we do not offer).
    pub const QUEUE_RESET: u64 = 0x0c0;
    /// R.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device-specific configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// `MagicValue`: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `Version` of the non-legacy interface.
pub const VERSION: u32 = 2;
/// `VendorID`: "LKL" (any value is valid; drivers match on device ID).
pub const VENDOR_ID: u32 = 0x004c_4b4c;

/// A register access the driver got wrong (4.2.2.2 "Driver Requirements:
/// MMIO Device Register Layout"). Reads that fail return zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// A control register accessed other than 32 bits wide and aligned
    /// ("The driver MUST only use 32 bit wide and aligned reads and writes
    /// to access the control registers"), or any access not 1/2/4/8 bytes.
    BadAccess {
        /// Offset from the base.
        offset: u64,
        /// Access width in bytes.
        len: usize,
    },
    /// No register at this offset.
    UnknownRegister(u64),
    /// A write to a read-only register.
    ReadOnly(u64),
    /// A read of a write-only register.
    WriteOnly(u64),
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioError::BadAccess { offset, len } => {
                write!(
                    f,
                    "driver made a {len}-byte access at register offset {offset:#x}"
                )
            }
            MmioError::UnknownRegister(o) => write!(f, "driver accessed unknown register {o:#x}"),
            MmioError::ReadOnly(o) => write!(f, "driver wrote read-only register {o:#x}"),
            MmioError::WriteOnly(o) => write!(f, "driver read write-only register {o:#x}"),
        }
    }
}

impl std::error::Error for MmioError {}

/// Transport counters: each one is a driver (or device) misstep we absorbed.
#[derive(Debug, Default, Serialize)]
pub struct MmioMetrics {
    /// Accesses refused with an [`MmioError`].
    pub bad_accesses: Counter,
    /// Status writes that were not a legal transition (ignored).
    pub illegal_status_writes: Counter,
    /// Times the device refused the driver's features at `FEATURES_OK`.
    pub features_refused: Counter,
    /// Feature bits the driver accepted that were never offered (dropped).
    pub unoffered_features: Counter,
    /// Writes ignored because of the device state (feature or queue
    /// registers at the wrong time, a queue register while the queue is
    /// ready, `QueueSel` out of range, ...).
    pub ignored_writes: Counter,
    /// Notifications for an inactive device or a queue it does not have.
    pub spurious_notifies: Counter,
    /// Activations that failed (queue validation or the device itself).
    pub activate_fails: Counter,
    /// Device resets (status 0 written, or a stopped queue).
    pub resets: Counter,
}

/// Looks up the kernel's RAM when a device is activated; `None` if it is
/// not known (yet).
pub type MemoryProvider = Arc<dyn Fn() -> Option<GuestMemory> + Send + Sync>;

enum MemorySource {
    Fixed(GuestMemory),
    Provider(MemoryProvider),
}

/// A virtio-mmio version 2 device: registers in front of a [`VirtioDevice`].
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: MemorySource,
    interrupt: Arc<Interrupt>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    acked_features: u64,
    queue_sel: u32,
    queues: Vec<QueueConfig>,
    /// Error of the last failed activation, for diagnosis.
    last_activate_error: Option<String>,
    metrics: Arc<MmioMetrics>,
}

impl fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmioTransport")
            .field("device_type", &self.device.device_type())
            .field("status", &self.status)
            .field(
                "acked_features",
                &format_args!("{:#x}", self.acked_features),
            )
            .field("queues", &self.queues)
            .finish()
    }
}

impl MmioTransport {
    /// Puts `device` behind a register file, its queues in `mem`. `irq`
    /// raises the device's interrupt in the kernel.
    pub fn new(mem: GuestMemory, device: Box<dyn VirtioDevice>, irq: IrqCallback) -> Self {
        Self::with_source(MemorySource::Fixed(mem), device, irq)
    }

    /// Like [`new`](Self::new), for a device that exists before the
    /// kernel's RAM does: `provider` is asked for guest memory each time the
    /// driver sets `DRIVER_OK`; if it has none, activation fails (the device
    /// reports `DEVICE_NEEDS_RESET`).
    pub fn with_memory_provider(
        provider: MemoryProvider,
        device: Box<dyn VirtioDevice>,
        irq: IrqCallback,
    ) -> Self {
        Self::with_source(MemorySource::Provider(provider), device, irq)
    }

    fn with_source(mem: MemorySource, device: Box<dyn VirtioDevice>, irq: IrqCallback) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&m| QueueConfig::new(m))
            .collect();
        MmioTransport {
            device,
            mem,
            interrupt: Arc::new(Interrupt::new(irq)),
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            acked_features: 0,
            queue_sel: 0,
            queues,
            last_activate_error: None,
            metrics: Arc::new(MmioMetrics::default()),
        }
    }

    /// Bytes of register space the device occupies: the control registers
    /// plus the configuration space.
    pub fn mmio_len(&self) -> u64 {
        regs::CONFIG + self.device.config_len() as u64
    }

    /// The kernel command-line argument that declares this device at host
    /// address `base` with interrupt `irq` (`virtio_mmio.device=`, parsed
    /// by the kernel's `vm_cmdline_set`).
    pub fn cmdline_arg(&self, base: usize, irq: u32) -> String {
        format!("virtio_mmio.device={}@{:#x}:{}", self.mmio_len(), base, irq)
    }

    /// The device behind the registers.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// The device's interrupt state.
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// Transport counters.
    pub fn metrics(&self) -> Arc<MmioMetrics> {
        self.metrics.clone()
    }

    /// The `Status` register as the driver reads it.
    pub fn status(&self) -> u32 {
        let mut s = self.status;
        if self.interrupt.needs_reset() {
            s |= status::DEVICE_NEEDS_RESET;
        }
        s
    }

    /// Everything offered: the device's features plus the transport's.
    pub fn offered_features(&self) -> u64 {
        self.device.avail_features() | features::TRANSPORT
    }

    /// The features the driver accepted (only offered bits).
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Why the last activation failed, if it did.
    pub fn last_activate_error(&self) -> Option<&str> {
        self.last_activate_error.as_deref()
    }

    /// Stops the device for good (kernel halt): the same as the driver
    /// resetting it. Call before the kernel's RAM goes away.
    pub fn shutdown(&mut self) {
        self.reset();
    }

    /// A register read of `data.len()` bytes at `offset`. On error `data`
    /// is zeroed.
    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        if !matches!(data.len(), 1 | 2 | 4 | 8) {
            return Err(self.bad(MmioError::BadAccess {
                offset,
                len: data.len(),
            }));
        }
        if offset >= regs::CONFIG {
            // "Device-specific configuration space starts at the offset 0x100
            // and is accessed with byte alignment."
            self.device.read_config(offset - regs::CONFIG, data);
            return Ok(());
        }
        if data.len() != 4 || offset & 3 != 0 {
            return Err(self.bad(MmioError::BadAccess {
                offset,
                len: data.len(),
            }));
        }
        let v: u32 = match offset {
            regs::MAGIC_VALUE => MAGIC,
            regs::VERSION => VERSION,
            regs::DEVICE_ID => self.device.device_type(),
            regs::VENDOR_ID => VENDOR_ID,
            regs::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            regs::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size)),
            regs::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            regs::INTERRUPT_STATUS => self.interrupt.status(),
            regs::STATUS => self.status(),
            regs::CONFIG_GENERATION => self.interrupt.config_generation(),
            // No shared memory regions: "Reading from a non-existent region
            // ... results in a length of -1" and a base of all ones.
            regs::SHM_LEN_LOW | regs::SHM_LEN_HIGH | regs::SHM_BASE_LOW | regs::SHM_BASE_HIGH => {
                u32::MAX
            }
            // VIRTIO_F_RING_RESET is not offered; the register reads 0.
            regs::QUEUE_RESET => 0,
            regs::DEVICE_FEATURES_SEL
            | regs::DRIVER_FEATURES
            | regs::DRIVER_FEATURES_SEL
            | regs::QUEUE_SEL
            | regs::QUEUE_NUM
            | regs::QUEUE_NOTIFY
            | regs::INTERRUPT_ACK
            | regs::QUEUE_DESC_LOW
            | regs::QUEUE_DESC_HIGH
            | regs::QUEUE_DRIVER_LOW
            | regs::QUEUE_DRIVER_HIGH
            | regs::QUEUE_DEVICE_LOW
            | regs::QUEUE_DEVICE_HIGH
            | regs::SHM_SEL => return Err(self.bad(MmioError::WriteOnly(offset))),
            _ => return Err(self.bad(MmioError::UnknownRegister(offset))),
        };
        data.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }

    /// A register write of `data.len()` bytes at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        if !matches!(data.len(), 1 | 2 | 4 | 8) {
            return Err(self.bad(MmioError::BadAccess {
                offset,
                len: data.len(),
            }));
        }
        if offset >= regs::CONFIG {
            self.device.write_config(offset - regs::CONFIG, data);
            return Ok(());
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return Err(self.bad(MmioError::BadAccess {
                offset,
                len: data.len(),
            }));
        };
        if offset & 3 != 0 {
            return Err(self.bad(MmioError::BadAccess { offset, len: 4 }));
        }
        let v = u32::from_le_bytes(bytes);
        match offset {
            regs::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            regs::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            regs::DRIVER_FEATURES => self.write_driver_features(v),
            regs::QUEUE_SEL => self.queue_sel = v,
            regs::QUEUE_NUM => self.write_queue(|q| q.size = u16::try_from(v).unwrap_or(0)),
            regs::QUEUE_READY => self.write_queue_ready(v),
            regs::QUEUE_DESC_LOW => self.write_queue(|q| set_low(&mut q.desc_table, v)),
            regs::QUEUE_DESC_HIGH => self.write_queue(|q| set_high(&mut q.desc_table, v)),
            regs::QUEUE_DRIVER_LOW => self.write_queue(|q| set_low(&mut q.avail_ring, v)),
            regs::QUEUE_DRIVER_HIGH => self.write_queue(|q| set_high(&mut q.avail_ring, v)),
            regs::QUEUE_DEVICE_LOW => self.write_queue(|q| set_low(&mut q.used_ring, v)),
            regs::QUEUE_DEVICE_HIGH => self.write_queue(|q| set_high(&mut q.used_ring, v)),
            regs::QUEUE_NOTIFY => self.notify(v),
            regs::INTERRUPT_ACK => self.interrupt.ack(v),
            regs::STATUS => self.write_status(v),
            // Not negotiable here (no shared memory, no RING_RESET): the
            // writes have no effect.
            regs::SHM_SEL | regs::QUEUE_RESET => self.metrics.ignored_writes.inc(),
            regs::MAGIC_VALUE
            | regs::VERSION
            | regs::DEVICE_ID
            | regs::VENDOR_ID
            | regs::DEVICE_FEATURES
            | regs::QUEUE_NUM_MAX
            | regs::INTERRUPT_STATUS
            | regs::SHM_LEN_LOW
            | regs::SHM_LEN_HIGH
            | regs::SHM_BASE_LOW
            | regs::SHM_BASE_HIGH
            | regs::CONFIG_GENERATION => return Err(self.bad(MmioError::ReadOnly(offset))),
            _ => return Err(self.bad(MmioError::UnknownRegister(offset))),
        }
        Ok(())
    }

    fn bad(&self, e: MmioError) -> MmioError {
        self.metrics.bad_accesses.inc();
        e
    }

    fn has(&self, bits: u32) -> bool {
        self.status & bits == bits
    }

    fn selected_queue(&self) -> Option<&QueueConfig> {
        self.queues.get(self.queue_sel as usize)
    }

    fn write_driver_features(&mut self, v: u32) {
        // 3.1.1: features are written after DRIVER and before FEATURES_OK;
        // 2.2.2 "The driver MUST NOT accept new features after FEATURES_OK".
        if !self.has(status::DRIVER) || self.has(status::FEATURES_OK) || self.has(status::FAILED) {
            self.metrics.ignored_writes.inc();
            return;
        }
        let shift = match self.driver_features_sel {
            0 => 0,
            1 => 32,
            _ => {
                self.metrics.ignored_writes.inc();
                return;
            }
        };
        let offered = (self.offered_features() >> shift) as u32;
        // 2.2.2: "The driver MUST NOT accept a feature which the device did
        // not offer". Such bits are dropped (Firecracker's
        // `ack_features_by_page` does the same).
        if v & !offered != 0 {
            self.metrics.unoffered_features.inc();
        }
        let mask = 0xffff_ffffu64 << shift;
        self.acked_features = (self.acked_features & !mask) | (u64::from(v & offered) << shift);
    }

    /// Applies `f` to the selected queue's configuration if the queue
    /// registers may be written now.
    fn write_queue(&mut self, f: impl FnOnce(&mut QueueConfig)) {
        // Queues are configured after FEATURES_OK and before DRIVER_OK
        // (3.1.1 step 7); 4.2.2.2: "When QueueReady is not zero, the driver
        // MUST NOT access QueueNum, QueueDescLow, ...".
        let may = self.has(status::FEATURES_OK)
            && !self.has(status::DRIVER_OK)
            && !self.has(status::FAILED);
        match self.queues.get_mut(self.queue_sel as usize) {
            Some(q) if may && !q.ready => f(q),
            _ => self.metrics.ignored_writes.inc(),
        }
    }

    fn write_queue_ready(&mut self, v: u32) {
        let Some(q) = self.queues.get(self.queue_sel as usize) else {
            self.metrics.ignored_writes.inc();
            return;
        };
        let ready = v != 0;
        if !ready && q.ready && self.device.is_activated() {
            // 4.2.2.2: "To stop using the queue the driver MUST write zero
            // (0x0) to this QueueReady and MUST read the value back"; 4.2.2.1:
            // the device then must not touch the queue. We cannot stop one
            // queue of a running device, so stop all of it and ask for a
            // reset.
            self.device.reset();
            self.interrupt.set_needs_reset();
            self.metrics.resets.inc();
        }
        if !ready {
            // Always allowed, so that a driver tearing down after a reset
            // (`vm_del_vq`) reads back 0.
            if let Some(q) = self.queues.get_mut(self.queue_sel as usize) {
                q.ready = false;
            }
            return;
        }
        self.write_queue(|q| q.ready = true);
    }

    fn notify(&self, index: u32) {
        // 4.2.3.3: the value written is the queue index (we do not offer
        // VIRTIO_F_NOTIFICATION_DATA).
        if !self.device.is_activated() || index as usize >= self.queues.len() {
            self.metrics.spurious_notifies.inc();
            return;
        }
        self.device.queue_notify(index);
    }

    fn write_status(&mut self, new: u32) {
        // Status writes: 0 resets; anything else may only add bits, one
        // step of the sequence in 3.1.1 "Driver Requirements: Device
        // Initialization" at a time (Linux's virtio_add_status writes
        // old | bit), or FAILED at any time.
        if new == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        let added = new & !old;
        // 2.1.1: "The driver MUST NOT clear a device status bit" (only a
        // reset does), and DEVICE_NEEDS_RESET is the device's to set (2.1).
        let legal = new & old == old
            && new & status::DEVICE_NEEDS_RESET == 0
            && match added & !status::FAILED {
                0 => true,
                status::ACKNOWLEDGE => old == 0,
                status::DRIVER => old == status::ACKNOWLEDGE,
                status::FEATURES_OK => old == status::ACKNOWLEDGE | status::DRIVER,
                status::DRIVER_OK => {
                    old == status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK
                }
                _ => false,
            };
        if !legal {
            self.metrics.illegal_status_writes.inc();
            return;
        }
        if added & status::FAILED != 0 {
            self.status |= status::FAILED;
        }
        match added & !status::FAILED {
            status::FEATURES_OK => {
                if self.features_acceptable() {
                    self.status |= status::FEATURES_OK;
                } else {
                    // 2.2.1: the device "MUST fail to set the FEATURES_OK
                    // device status bit"; the driver reads Status back and
                    // gives up (3.1.1 step 6).
                    self.metrics.features_refused.inc();
                }
            }
            status::DRIVER_OK => {
                // Set first: the device may notify or read registers as soon
                // as it runs.
                self.status |= status::DRIVER_OK;
                if self.status & status::FAILED == 0 {
                    self.activate();
                }
            }
            bit => self.status |= bit,
        }
    }

    fn features_acceptable(&self) -> bool {
        // Version 2 of the transport is the non-legacy interface; Linux's
        // vm_finalize_features insists on the same.
        self.acked_features & features::VERSION_1 != 0
            && self.device.check_features(self.acked_features)
    }

    fn memory(&self) -> Option<GuestMemory> {
        match &self.mem {
            MemorySource::Fixed(m) => Some(m.clone()),
            MemorySource::Provider(p) => p(),
        }
    }

    fn activate(&mut self) {
        let result = self
            .memory()
            .ok_or_else(|| "guest memory not available".to_owned())
            .and_then(|mem| {
                let queues = self
                    .queues
                    .iter()
                    .map(|c| Queue::new(mem.clone(), c, self.acked_features))
                    .collect::<Result<Vec<_>, QueueError>>()
                    .map_err(|e| e.to_string())?;
                Ok((mem, queues))
            })
            .and_then(|(mem, queues)| {
                self.device
                    .activate(ActivateContext {
                        mem,
                        queues,
                        interrupt: self.interrupt.clone(),
                        acked_features: self.acked_features,
                    })
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            // 2.1.2: a device that cannot go on sets DEVICE_NEEDS_RESET and
            // sends a configuration change notification.
            self.last_activate_error = Some(e);
            self.metrics.activate_fails.inc();
            self.interrupt.set_needs_reset();
        }
    }

    fn reset(&mut self) {
        // 2.4 and 4.2.2.1: a reset returns every register to its initial
        // state: the device stops (its worker is joined inside
        // `device.reset()`), InterruptStatus and every QueueReady clear.
        if self.device.is_activated() {
            self.device.reset();
        }
        self.interrupt.reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.acked_features = 0;
        self.queue_sel = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.metrics.resets.inc();
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        if self.device.is_activated() {
            self.device.reset();
        }
    }
}

fn set_low(a: &mut GuestAddress, v: u32) {
    a.0 = (a.0 & !0xffff_ffff) | u64::from(v);
}

fn set_high(a: &mut GuestAddress, v: u32) {
    a.0 = (a.0 & 0xffff_ffff) | (u64::from(v) << 32);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::virtio::device::{ActivateError, INT_CONFIG, INT_USED_RING};
    use crate::virtio::mem::RAM_PHYS_BASE;
    use crate::virtio::test_utils::{
        add_status, device_features, read32, set_driver_features, setup_queue, write32, DriverQueue,
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
        add_status(t, status::ACKNOWLEDGE);
        add_status(t, status::DRIVER);
        set_driver_features(t, DUMMY_FEATURE | features::RING_EVENT_IDX);
        add_status(t, status::FEATURES_OK);
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
        add_status(t, status::ACKNOWLEDGE);
        add_status(t, status::DRIVER);
        set_driver_features(t, features::VERSION_1);
        add_status(t, status::FEATURES_OK);
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

        add_status(t, status::ACKNOWLEDGE);
        add_status(t, status::DRIVER);
        set_driver_features(t, features::VERSION_1);
        add_status(t, status::FEATURES_OK);
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
        add_status(t, status::ACKNOWLEDGE);
        add_status(t, status::DRIVER);
        set_driver_features(t, features::VERSION_1);
        add_status(t, status::FEATURES_OK);
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
        add_status(t, status::ACKNOWLEDGE);
        add_status(t, status::DRIVER);
        set_driver_features(t, features::VERSION_1);
        add_status(t, status::FEATURES_OK);
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
}

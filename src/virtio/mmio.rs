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

pub mod regs;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::device::{ActivateContext, Interrupt, IrqCallback, VirtioDevice};
use super::features;
use super::mem::{GuestAddress, GuestMemory};
use super::metrics::Counter;
use super::queue::{Queue, QueueConfig, QueueError};
use super::status;

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
